/** Entra ID endpoints msal-node 7 calls for the client-credentials grant: OIDC discovery, instance discovery, token. */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { aadErrorBody, readBody, resetConnection, retryAfterHeader, sendJson, sleep } from './http.js';
import { signHs256, verifyClientAssertion } from './jwt.js';
import type { EmulatorState } from './state.js';
import type { TokenRequestRecord } from './types.js';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const MAX_TOKEN_BODY = 64 * 1024;

function openIdConfiguration(origin: string, tenantId: string): Record<string, unknown> {
  const base = `${origin}/${tenantId}`;
  return {
    token_endpoint: `${base}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: `${base}/discovery/v2.0/keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    // Same origin as the authority: msal-node validates the issuer host against it.
    issuer: `${base}/v2.0`,
    request_uri_parameter_supported: false,
    userinfo_endpoint: `${origin}/oidc/userinfo`,
    authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
    device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${base}/oauth2/v2.0/logout`,
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'tid', 'ver'],
    tenant_region_scope: 'EU',
    cloud_instance_name: new URL(origin).host,
    cloud_graph_host_name: new URL(origin).host,
    msgraph_host: new URL(origin).host,
  };
}

function instanceDiscovery(origin: string, tenantId: string): Record<string, unknown> {
  const host = new URL(origin).host;
  return {
    tenant_discovery_endpoint: `${origin}/${tenantId}/v2.0/.well-known/openid-configuration`,
    'api-version': '1.1',
    metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host, host.replace('127.0.0.1', 'localhost')] }],
  };
}

/** Handles an Entra ID request; returns false when the path is not an Entra endpoint. */
export async function handleEntra(state: EmulatorState, req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  const segments = url.pathname.split('/').filter((s) => s.length > 0);
  const tenant = segments[0] ?? '';
  const rest = segments.slice(1).join('/');
  const correlationId = String(req.headers['client-request-id'] ?? randomUUID());
  const knownTenant = state.tenant(tenant);
  const unknownTenant = (): void =>
    sendJson(res, 400, aadErrorBody('invalid_tenant', 90002, `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID.`, correlationId, state.origin));

  if (req.method === 'GET' && tenant === 'common' && rest === 'discovery/instance') {
    sendJson(res, 200, instanceDiscovery(state.origin, state.config.tenantId));
    return true;
  }
  if (req.method === 'GET' && (rest === 'v2.0/.well-known/openid-configuration' || rest === '.well-known/openid-configuration')) {
    if (knownTenant) sendJson(res, 200, openIdConfiguration(state.origin, knownTenant.tenantId));
    else unknownTenant();
    return true;
  }
  if (req.method === 'GET' && rest === 'discovery/v2.0/keys') {
    sendJson(res, 200, { keys: [] });
    return true;
  }
  if (rest === 'oauth2/v2.0/token') {
    if (req.method !== 'POST') {
      sendJson(res, 405, aadErrorBody('invalid_request', 900561, 'The endpoint only accepts POST requests.', correlationId, state.origin));
      return true;
    }
    await handleToken(state, req, res, tenant, correlationId);
    return true;
  }
  return false;
}

async function handleToken(state: EmulatorState, req: IncomingMessage, res: ServerResponse, tenant: string, correlationId: string): Promise<void> {
  const record: TokenRequestRecord = { tenantId: tenant, remoteAddress: req.socket.remoteAddress ?? '', at: new Date(), ok: false, status: 0 };
  state.tokenRequests.push(record);
  const { origin } = state;
  const config = state.tenant(tenant);
  const fail = (status: number, error: string, aadsts: number, description: string, headers: Record<string, string> = {}): void => {
    record.status = status;
    record.error = `${error} AADSTS${aadsts}`;
    sendJson(res, status, aadErrorBody(error, aadsts, description, correlationId, origin), { 'Cache-Control': 'no-store, no-cache', ...headers });
  };

  const body = await readBody(req, MAX_TOKEN_BODY);
  if (body.aborted) return;
  const step = state.takeTokenStep();
  if (step && 'reset' in step) {
    record.error = 'scripted reset';
    resetConnection(req);
    return;
  }
  if (step && 'delayMs' in step) await sleep(step.delayMs, state.closing.signal);
  if (step && 'status' in step) {
    fail(step.status, step.error ?? 'temporarily_unavailable', step.aadsts ?? 50196,
      step.description ?? 'The server is temporarily unavailable (scripted by the emulator).', retryAfterHeader(step.retryAfter));
    return;
  }
  if (!body.body) {
    fail(413, 'invalid_request', 90020, 'The request body is too large.');
    return;
  }
  if (!config) {
    fail(400, 'invalid_tenant', 90002, `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID.`);
    return;
  }
  const form = new URLSearchParams(body.body.toString('utf8'));
  const grantType = form.get('grant_type');
  const clientId = form.get('client_id');
  const scope = form.get('scope');
  if (grantType !== 'client_credentials') {
    fail(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grantType ?? ''}'.`);
    return;
  }
  if (!clientId) {
    fail(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'client_id'.");
    return;
  }
  if (clientId !== config.clientId) {
    fail(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${config.tenantId}'.`);
    return;
  }
  if (!scope) {
    fail(400, 'invalid_request', 900144, "The request body must contain the following parameter: 'scope'.");
    return;
  }
  const resource = /^(.*)\/\.default$/.exec(scope.trim())?.[1];
  if (resource === undefined || (resource !== origin && !state.config.otherResources.has(resource))) {
    fail(400, 'invalid_scope', 70011, `The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`);
    return;
  }

  const secret = form.get('client_secret');
  const assertion = form.get('client_assertion');
  if (secret !== null && assertion !== null) {
    fail(401, 'invalid_request', 90025, 'Only one client credential may be sent: client_secret or client_assertion.');
    return;
  }
  if (secret !== null) {
    record.credential = 'secret';
    if (secret !== config.clientSecret) {
      fail(401, 'invalid_client', 7000215, `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${config.clientId}'.`);
      return;
    }
  } else if (assertion !== null) {
    record.assertion = assertion;
    if (form.get('client_assertion_type') !== JWT_BEARER) {
      fail(400, 'invalid_request', 700023, `client_assertion_type must be '${JWT_BEARER}'.`);
      return;
    }
    if (state.config.acceptedAssertions.has(assertion) || state.config.federatedTokens?.(assertion) === true) {
      record.credential = 'assertion';
    } else {
      record.credential = 'certificate';
      const audiences = [config.tenantId, tenant].flatMap((t) => [`${origin}/${t}/oauth2/v2.0/token`, `${origin}/${t}/oauth2/token`]);
      const checks = config.clientCertPems.map((pem) => verifyClientAssertion(assertion, pem, config.clientId, audiences));
      const passed = checks.find((c) => c.ok);
      if (!passed) {
        const first = checks[0];
        fail(401, 'invalid_client', first?.aadsts ?? 700027, first?.reason ?? 'No certificate is registered for this application.');
        return;
      }
    }
  } else {
    fail(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
    return;
  }

  const now = Math.floor(Date.now() / 1000);
  const lifetime = state.config.tokenLifetimeSec;
  const accessToken = signHs256({
    aud: origin,
    iss: `https://sts.windows.net/${config.tenantId}/`,
    iat: now,
    nbf: now,
    exp: now + lifetime,
    appid: config.clientId,
    azp: config.clientId,
    tid: config.tenantId,
    // Application permissions granted in Entra ID (none when the grant is RBAC for Applications in Exchange).
    ...(config.roles.length ? { roles: config.roles } : {}),
    sub: config.clientId,
    jti: randomUUID(),
    ver: '1.0',
    emu_gen: state.tokenGeneration,
    emu_cred: record.credential,
  }, state.tokenSecret);
  record.ok = true;
  record.status = 200;
  sendJson(res, 200, { token_type: 'Bearer', expires_in: lifetime, ext_expires_in: lifetime, access_token: accessToken },
    { 'Cache-Control': 'no-store, no-cache', Pragma: 'no-cache' });
}

/** App-only Graph tokens from Entra ID with msal-node (secret, certificate, workload identity or managed identity). */

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfidentialClientApplication, LogLevel, type Configuration, type NodeSystemOptions } from '@azure/msal-node';
import { selectCredential, type CredentialKind } from '../config/credentials.js';
import { managedIdentityAcquirer, type AcquireToken } from './managed-identity.js';
import { federatedAssertion } from './workload-identity.js';
import type { GraphConfig } from '../config/config.js';
import { isWellKnownAuthorityHost } from '../config/clouds.js';
import { Agent, type Dispatcher } from 'undici';
import { aadstsCode, entraHint, entraSentence } from './entra-errors.js';
import { MsalNetwork, type TokenNetworkFailure } from './msal-network.js';
import type { Logger } from '../observability/logger.js';
import { ConfigError, TokenError } from '../errors.js';

export interface TokenProvider {
  /** A token from msal's cache until near expiry; `fresh` bypasses the cache (after a 401). */
  getToken(fresh?: boolean): Promise<string>;
  /** When a token was last obtained, for readiness. */
  readonly lastSuccessAt: number | null;
}


export interface CertificateCredential {
  thumbprintSha256: string;
  privateKey: string;
  x5c: string;
}

/** Reads a PEM file holding the private key and the certificate, as AZURE_CLIENT_CERTIFICATE_PATH does. */
export function readCertificateCredential(file: string): CertificateCredential {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('graph.clientCertificatePath', `cannot read "${file}": ${(err as Error).message}`);
  }
  const certMatch = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  const keyMatch = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.exec(pem);
  if (!certMatch) throw new ConfigError('graph.clientCertificatePath', `"${file}" holds no PEM certificate`);
  if (!keyMatch) throw new ConfigError('graph.clientCertificatePath', `"${file}" holds no PEM private key (put the key and the certificate in one file)`);
  let cert: X509Certificate;
  let privateKey: string;
  try {
    cert = new X509Certificate(certMatch[0]);
    privateKey = createPrivateKey(keyMatch[0]).export({ type: 'pkcs8', format: 'pem' }).toString();
  } catch (err) {
    throw new ConfigError('graph.clientCertificatePath', `"${file}": ${(err as Error).message}`);
  }
  return {
    thumbprintSha256: cert.fingerprint256.replace(/:/g, '').toLowerCase(),
    privateKey,
    x5c: cert.raw.toString('base64'),
  };
}

/** Renew this long before expiry, as msal-node does. */
const REFRESH_MARGIN_MS = 5 * 60_000;
/** A token with less validity left than this is not handed out: callers wait for the new one. */
const MIN_VALIDITY_MS = 60_000;

export class MsalTokenProvider implements TokenProvider {
  private readonly acquire: AcquireToken;
  private readonly network: MsalNetwork;
  private readonly authorityHost: string;
  readonly credential: CredentialKind;
  lastSuccessAt: number | null = null;

  /** `onResult` hears every token that came from Entra ID (not msal's cache) and every failure: for metrics. */
  constructor(
    cfg: GraphConfig,
    private readonly log: Logger,
    private readonly onResult: (ok: boolean) => void = () => undefined,
    env: NodeJS.ProcessEnv = process.env,
    /** How to reach Entra ID (tests: one that trusts their CA); by default an agent with graph.connectTimeout. */
    dispatcher: Dispatcher = new Agent({ connect: { timeout: cfg.connectTimeoutMs } }),
  ) {
    const sel = selectCredential(cfg, env);
    if (!sel.ok) throw new ConfigError(sel.key, sel.problem);
    this.credential = sel.kind;
    this.network = new MsalNetwork({ headersTimeoutMs: cfg.headersTimeoutMs, dispatcher });
    this.authorityHost = new URL(cfg.authorityHost).host;
    const system: NodeSystemOptions = {
      networkClient: this.network,
      loggerOptions: {
        piiLoggingEnabled: false,
        logLevel: LogLevel.Warning,
        loggerCallback: (level, message) => {
          if (level <= LogLevel.Warning) log.warn({ event: 'msal', component: 'msal' }, message);
        },
      },
    };
    if (sel.kind === 'managed-identity') {
      this.acquire = managedIdentityAcquirer(cfg.graphUrl, cfg.clientId, system);
      return;
    }
    if (!cfg.tenantId || !cfg.clientId) throw new ConfigError('graph.tenantId', 'tenant and client id are required');
    const auth: Configuration['auth'] = {
      clientId: cfg.clientId,
      authority: `${cfg.authorityHost}/${cfg.tenantId}`,
      // msal-node knows the public clouds' hosts; any other host (a sovereign proxy, the test emulator)
      // must be trusted explicitly, or msal asks the global cloud's instance discovery about it.
      knownAuthorities: isWellKnownAuthorityHost(cfg.authorityHost) ? [] : [new URL(cfg.authorityHost).host],
    };
    if (sel.kind === 'certificate' && cfg.clientCertificatePath) {
      const c = readCertificateCredential(cfg.clientCertificatePath);
      auth.clientCertificate = { thumbprintSha256: c.thumbprintSha256, privateKey: c.privateKey, x5c: c.x5c };
    } else if (sel.kind === 'workload-identity' && cfg.federatedTokenFile) {
      auth.clientAssertion = federatedAssertion(cfg.federatedTokenFile);
    } else if (cfg.clientSecret) {
      auth.clientSecret = cfg.clientSecret;
    }
    const app = new ConfidentialClientApplication({ auth, system });
    const scope = `${cfg.graphUrl}/.default`;
    this.acquire = (fresh) => app.acquireTokenByClientCredential({ scopes: [scope], skipCache: fresh });
  }

  /**
   * The token is kept here while more than REFRESH_MARGIN_MS of it remains, and callers that arrive while
   * one is being fetched share that request: msal's own cache lookup costs ~7% of a delivery's CPU, and
   * without sharing, a burst at start sends one token request per message in flight.
   */
  async getToken(fresh = false): Promise<string> {
    const left = this.cached ? this.cached.expiresAt - Date.now() : 0;
    if (!fresh && left > REFRESH_MARGIN_MS) return this.cached!.token;
    this.pending ??= this.fetchToken(fresh).finally(() => (this.pending = null));
    if (!fresh && left > MIN_VALIDITY_MS) {
      // Renewed in the background (a failure is logged by fetchToken): deliveries do not stall every hour.
      this.pending.catch(() => undefined);
      return this.cached!.token;
    }
    return this.pending;
  }

  /** At start: the first message need not wait for Entra ID, and a credential problem shows in the log at once. */
  warmUp(): void {
    this.getToken().catch(() => undefined);
  }

  private cached: { token: string; expiresAt: number } | null = null;
  private pending: Promise<string> | null = null;

  private async fetchToken(fresh: boolean): Promise<string> {
    this.network.lastFailure = null;
    try {
      const res = await this.acquire(fresh);
      if (!res?.accessToken) throw new TokenError('Entra ID returned no access token', 'no_token');
      if (fresh || res.fromCache === false) {
        this.log.info({ event: 'token', credential: this.credential, fresh, expiresOn: res.expiresOn?.toISOString() }, 'Graph token acquired');
        this.onResult(true);
      }
      this.lastSuccessAt = Date.now();
      this.cached = { token: res.accessToken, expiresAt: res.expiresOn?.getTime() ?? 0 };
      return res.accessToken;
    } catch (err) {
      this.onResult(false);
      if (err instanceof TokenError) throw err;
      const e = err as { errorCode?: string; errorMessage?: string; message?: string };
      const raw = (e.errorMessage || e.message || String(err)).split('\n')[0]!;
      // msal's own words ("endpoints_resolution_error", "fetch failed") name neither host nor cause: ours do.
      const failure = this.network.lastFailure as TokenNetworkFailure | null; // set by requests since the reset above
      const hint = entraHint(raw);
      const msg = failure
        ? `${failure.step}: ${failure.cause}`
        : `Entra ID (${this.authorityHost}) refused the token request: ${e.errorCode ? `${e.errorCode}: ` : ''}${entraSentence(raw)}${hint ? ` — ${hint}` : ''}`;
      const aadsts = aadstsCode(raw);
      this.log.error({ event: 'token-failed', credential: this.credential, errorCode: e.errorCode, ...(aadsts ? { aadsts } : {}), ...(failure ? { step: failure.step } : {}) }, `could not get a Graph token: ${msg}`);
      throw new TokenError(msg, aadsts ?? e.errorCode ?? 'unknown', hint);
    }
  }
}

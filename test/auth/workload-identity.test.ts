/** Container-native credentials: workload identity against the emulator, managed identity against a fake host endpoint, and the selection. */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { selectCredential } from '../../src/config/credentials.js';
import { MsalTokenProvider } from '../../src/auth/token-provider.js';
import { federatedAssertion } from '../../src/auth/workload-identity.js';
import { type GraphConfig } from '../../src/config/config.js';
import { buildConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { startEmulator, type Emulator } from '../emulator/emulator.js';
import { startGraphRelay } from '../helpers/graph-relay.js';
import type { RelayProcess } from '../helpers/relay-process.js';
import { ConfigError, FederatedTokenError } from '../../src/errors.js';

/** A projected service-account token looks like a JWT; the emulator accepts the listed ones verbatim. */
function fakeServiceAccountToken(): string {
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'RS256', kid: 'k8s' })}.${b64({ iss: 'https://oidc.example/cluster', sub: 'system:serviceaccount:smtp-graph-relay:smtp-graph-relay', aud: ['api://AzureADTokenExchange'], jti: randomBytes(8).toString('hex') })}.${randomBytes(32).toString('base64url')}`;
}

describe('workload identity federation through the relay', () => {
  const first = fakeServiceAccountToken();
  const second = fakeServiceAccountToken();
  const dir = mkdtempSync(path.join(tmpdir(), 'relay-wi-'));
  const tokenFile = path.join(dir, 'azure-identity-token');
  let emu: Emulator;
  let relay: RelayProcess;

  const send = async (subject: string): Promise<void> => {
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, secure: false, ignoreTLS: true });
    await t.sendMail({ from: 'scanner@contoso.example', to: 'alice@fabrikam.example', subject, text: 'hello' });
    t.close();
  };

  beforeAll(async () => {
    emu = await startEmulator({ acceptedAssertions: [first] });
    writeFileSync(tokenFile, `${first}\n`); // the kubelet's file ends with no newline, but be lenient
    relay = await startGraphRelay(
      emu,
      { admin: { enabled: false } },
      // As the AKS webhook injects it: no secret anywhere.
      { env: { AZURE_FEDERATED_TOKEN_FILE: tokenFile, RELAY_CREDENTIAL: 'workload-identity' } },
    );
  });
  afterAll(async () => {
    expect(await relay?.stop()).toBe(0);
    await emu?.close();
  });

  it('sends the token file as the client assertion, and reads it again for the next token', async () => {
    await send('one');
    await relay.waitForLog((l) => l.event === 'delivered');
    expect(relay.logs.find((l) => l.event === 'token')).toMatchObject({ credential: 'workload-identity' });
    expect(emu.tokenRequests.map((r) => [r.ok, r.credential, r.assertion])).toEqual([[true, 'assertion', first]]);

    // The kubelet rotates the token; the old one stops being accepted; Graph invalidates the access token.
    writeFileSync(tokenFile, second);
    emu.acceptedAssertions.delete(first);
    emu.acceptedAssertions.add(second);
    emu.revokeTokens();

    await send('two');
    await relay.waitForLogs((l) => l.event === 'delivered', 2);
    expect(emu.tokenRequests.map((r) => [r.ok, r.credential, r.assertion])).toEqual([
      [true, 'assertion', first],
      [true, 'assertion', second],
    ]);
    expect(emu.sent).toHaveLength(2);
    expect(JSON.stringify(relay.logs)).not.toContain(second.split('.')[2]); // the assertion is never logged
  });
});

describe('federatedAssertion', () => {
  it('reads the file on every call and trims it', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'relay-wi-')), 'token');
    const get = federatedAssertion(file);
    writeFileSync(file, 'a.b.c\n');
    expect(await get()).toBe('a.b.c');
    writeFileSync(file, 'd.e.f');
    expect(await get()).toBe('d.e.f');
    writeFileSync(file, '  \n');
    await expect(get()).rejects.toThrow(FederatedTokenError);
  });

  it('names the file when it cannot be read', async () => {
    await expect(federatedAssertion('/nonexistent/token')()).rejects.toThrow(/"\/nonexistent\/token": ENOENT/);
  });
});

describe('managed identity (msal ManagedIdentityApplication)', () => {
  // An App Service / Container Apps style identity endpoint: msal finds it through IDENTITY_ENDPOINT and IDENTITY_HEADER.
  let server: Server;
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  const saved = { ...process.env };
  /** Lifetime of the next token handed out; back to an hour after that one. */
  let nextTtlSeconds = 3600;

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ url: req.url!, headers: req.headers });
      if (req.headers['x-identity-header'] !== 'header-secret') {
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'bad header' }));
        return;
      }
      const resource = new URL(req.url!, 'http://x').searchParams.get('resource');
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({ access_token: `mi-token-${seen.length}`, expires_on: Math.floor(Date.now() / 1000) + nextTtlSeconds, resource, token_type: 'Bearer', client_id: 'mi-client' }),
      );
      nextTtlSeconds = 3600;
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    process.env.IDENTITY_ENDPOINT = `http://127.0.0.1:${(server.address() as AddressInfo).port}/msi/token`;
    process.env.IDENTITY_HEADER = 'header-secret';
  });
  afterAll(async () => {
    process.env = saved;
    await new Promise<void>((r) => server.close(() => r()));
  });

  const graph = (over: Record<string, unknown> = {}): GraphConfig =>
    buildConfig({ delivery: { mode: 'capture' }, graph: { credential: 'managed-identity', ...over } }, { RELAY_FALLBACK_MAILBOX: 'relay@contoso.example' }).graph;

  it('gets a Graph token from the host endpoint, for a user-assigned identity when AZURE_CLIENT_ID is set', async () => {
    const results: boolean[] = [];
    const p = new MsalTokenProvider(graph({ clientId: '11111111-2222-3333-4444-555555555555' }), createLogger('silent'), { onResult: (ok) => results.push(ok) });
    expect(p.credential).toBe('managed-identity');
    expect(await p.getToken()).toBe('mi-token-1');
    expect(await p.getToken()).toBe('mi-token-1'); // msal's cache
    expect(await p.getToken(true)).toBe('mi-token-2'); // after a 401: fresh
    expect(results).toEqual([true, true]);
    const q = new URL(seen[0]!.url, 'http://x').searchParams;
    expect(q.get('resource')).toBe('https://graph.microsoft.com');
    expect(q.get('api-version')).toBe('2019-08-01');
    expect(q.get('client_id')).toBe('11111111-2222-3333-4444-555555555555');
  });

  it('renews a token near its expiry in the background and hands out the current one meanwhile', async () => {
    nextTtlSeconds = 120; // inside the 5-minute renewal margin, but still valid
    const p = new MsalTokenProvider(graph(), createLogger('silent'));
    const first = await p.getToken();
    const requests = seen.length;
    expect(await p.getToken()).toBe(first); // not waiting for the renewal
    await vi.waitFor(async () => expect(await p.getToken()).not.toBe(first));
    expect(seen.length).toBe(requests + 1); // one renewal, shared by every caller meanwhile
  });

  it('uses the system-assigned identity without a client id', async () => {
    const p = new MsalTokenProvider(graph(), createLogger('silent'));
    await p.getToken();
    expect(new URL(seen.at(-1)!.url, 'http://x').searchParams.has('client_id')).toBe(false);
  });

  it('reaches the identity endpoint directly even with a proxy set; Entra ID would go through it', async () => {
    // A proxy that does not exist: a request through it fails, so a token here proves the direct path.
    // A client id of its own: msal keeps managed identity tokens in a cache shared by every instance.
    const proxied = graph({ proxy: 'http://127.0.0.1:9', clientId: '99999999-2222-3333-4444-555555555555' });
    expect(proxied.proxy?.url).toBe('http://127.0.0.1:9');
    const before = seen.length;
    expect(await new MsalTokenProvider(proxied, createLogger('silent')).getToken()).toMatch(/^mi-token-/);
    expect(seen.length).toBe(before + 1);
    const secret = { ...proxied, credential: 'secret' as const, tenantId: '6f1d3c2b-8a4e-4b7f-9c5d-2e0a1b3c4d5e', clientId: '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f', clientSecret: 's', authorityHost: 'https://login.example.test', connectTimeoutMs: 2000 };
    await expect(new MsalTokenProvider(secret, createLogger('silent')).getToken()).rejects.toThrow(/login\.example\.test\/.* via proxy http:\/\/127\.0\.0\.1:9: connection refused \(ECONNREFUSED\)/);
  });
});

describe('credential selection', () => {
  const base = { credential: 'auto' as const, tenantId: 't', clientId: 'c', clientSecret: null, clientCertificatePath: null, federatedTokenFile: null };

  it('auto: certificate, then secret, then workload identity, then an advertised managed identity', () => {
    expect(selectCredential({ ...base, clientSecret: 's', clientCertificatePath: '/c.pem', federatedTokenFile: '/t' }, {})).toEqual({ ok: true, kind: 'certificate' });
    expect(selectCredential({ ...base, clientSecret: 's', federatedTokenFile: '/t' }, {})).toEqual({ ok: true, kind: 'secret' });
    expect(selectCredential({ ...base, federatedTokenFile: '/t' }, {})).toEqual({ ok: true, kind: 'workload-identity' });
    expect(selectCredential({ ...base, tenantId: null, clientId: null }, { IDENTITY_ENDPOINT: 'http://x' })).toEqual({ ok: true, kind: 'managed-identity' });
    expect(selectCredential(base, {})).toMatchObject({ ok: false, key: 'graph.credential' });
  });

  it('explicit: the chosen credential must have its input', () => {
    expect(selectCredential({ ...base, credential: 'workload-identity', clientSecret: 's' }, {})).toMatchObject({ ok: false, key: 'graph.federatedTokenFile' });
    expect(selectCredential({ ...base, credential: 'certificate', clientSecret: 's' }, {})).toMatchObject({ ok: false, key: 'graph.clientCertificatePath' });
    expect(selectCredential({ ...base, credential: 'secret' }, {})).toMatchObject({ ok: false, key: 'graph.clientSecret' });
    expect(selectCredential({ ...base, credential: 'secret', clientSecret: 's', tenantId: null }, {})).toMatchObject({ ok: false, key: 'graph.tenantId' });
    // A managed identity needs neither tenant nor app registration.
    expect(selectCredential({ ...base, credential: 'managed-identity', tenantId: null, clientId: null }, {})).toEqual({ ok: true, kind: 'managed-identity' });
  });

  it('configuration: graph.credential, RELAY_CREDENTIAL and AZURE_FEDERATED_TOKEN_FILE; graph mode refuses to start without a credential', () => {
    const env = { AZURE_TENANT_ID: '6f1d3c2b-8a4e-4b7f-9c5d-2e0a1b3c4d5e', AZURE_CLIENT_ID: '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f', RELAY_FALLBACK_MAILBOX: 'relay@contoso.example' };
    const cfg = buildConfig({ graph: { federatedTokenFile: 'token' } }, { ...env, RELAY_CREDENTIAL: 'workload-identity' }, '/etc/relay');
    expect(cfg.graph).toMatchObject({ credential: 'workload-identity', federatedTokenFile: '/etc/relay/token' });
    expect(buildConfig({ graph: { federatedTokenFile: 'a' } }, { ...env, AZURE_FEDERATED_TOKEN_FILE: '/var/run/t' }).graph.federatedTokenFile).toBe('/var/run/t');
    expect(buildConfig({ graph: { credential: 'managed-identity' } }, { RELAY_FALLBACK_MAILBOX: 'relay@contoso.example' }).graph.credential).toBe('managed-identity');
    expect(() => buildConfig({}, env)).toThrow(ConfigError);
    expect(() => buildConfig({}, env)).toThrow(/graph.credential: no Graph credential/);
    expect(() => buildConfig({}, { ...env, RELAY_CREDENTIAL: 'password' })).toThrow(/RELAY_CREDENTIAL: must be one of/);
    expect(() => buildConfig({ graph: { credential: 'kerberos' } }, env)).toThrow(/graph.credential: must be one of/);
  });
});

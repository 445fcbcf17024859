/** Tests of the Graph + Entra ID emulator itself, driven by the real msal-node and undici clients. */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ConfidentialClientApplication } from '@azure/msal-node';
import type { Configuration, INetworkModule, NetworkRequestOptions, NetworkResponse } from '@azure/msal-node';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator } from './emulator/emulator.js';
import type { Emulator, RequestLogEntry } from './emulator/emulator.js';
import { makeTestPki } from './emulator/pki.js';
import type { TestPki } from './emulator/pki.js';

const MiB = 1024 * 1024;
const ALICE = 'alice@contoso.example';
const BOB = 'bob@contoso.example';

let workDir: string;
let pki: TestPki;
let emu: Emulator;
let dispatcher: Agent;
let token: string;

/** msal-node's default client uses global fetch, which ignores a CA added after start-up; this one trusts the test CA. */
function networkClient(agent: Agent): INetworkModule {
  const send = async <T>(method: 'GET' | 'POST', url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> => {
    const res = await request(url, { method, dispatcher: agent, headers: options?.headers ?? {}, body: options?.body ?? null });
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(res.headers)) if (value !== undefined) headers[key] = Array.isArray(value) ? value.join(', ') : value;
    return { status: res.statusCode, headers, body: JSON.parse(await res.body.text()) as T };
  };
  return {
    sendGetRequestAsync: <T>(url: string, options?: NetworkRequestOptions) => send<T>('GET', url, options),
    sendPostRequestAsync: <T>(url: string, options?: NetworkRequestOptions) => send<T>('POST', url, options),
  };
}

function msalApp(auth: Partial<Configuration['auth']>): ConfidentialClientApplication {
  return new ConfidentialClientApplication({
    auth: { clientId: emu.clientId, authority: emu.authority, knownAuthorities: [new URL(emu.authorityHost).host], ...auth },
    system: { networkClient: networkClient(dispatcher) },
  });
}

async function msalToken(auth: Partial<Configuration['auth']>): Promise<string> {
  const result = await msalApp(auth).acquireTokenByClientCredential({ scopes: [`${emu.graphUrl}/.default`] });
  if (!result) throw new Error('msal returned no result');
  return result.accessToken;
}

interface GraphResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => { error?: { code?: string; message?: string; innerError?: Record<string, string> } } & Record<string, unknown>;
}

async function call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, opts: {
  body?: string | Buffer; contentType?: string; auth?: string | null; headers?: Record<string, string>;
} = {}): Promise<GraphResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.contentType) headers['content-type'] = opts.contentType;
  const auth = opts.auth === undefined ? `Bearer ${token}` : opts.auth;
  if (auth !== null) headers['authorization'] = auth;
  const res = await request(url.startsWith('https:') ? url : `${emu.graphUrl}${url}`, { method, headers, body: opts.body ?? null, dispatcher });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as ReturnType<GraphResponse['json']> };
}

const mime = (subject: string, to = 'rcpt@example.org'): Buffer =>
  Buffer.from(`From: sender@contoso.example\r\nTo: ${to}\r\nSubject: ${subject}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello ${subject}\r\n`);

const sendMime = (upn: string, message: Buffer, extra: { auth?: string | null; headers?: Record<string, string> } = {}): Promise<GraphResponse> =>
  call('POST', `/v1.0/users/${encodeURIComponent(upn)}/sendMail`, { body: message.toString('base64'), contentType: 'text/plain', ...extra });

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'emulator-test-'));
  pki = makeTestPki(join(workDir, 'pki'));
  // The test messages come From sender@contoso.example: both mailboxes may send as it (Send As granted).
  emu = await startEmulator({ pki, mailboxes: [ALICE, BOB], acceptedAssertions: ['federated-token-from-kubelet'], sendAs: { [ALICE]: ['sender@contoso.example'], [BOB]: ['Sender@Contoso.example'] } });
  dispatcher = new Agent({ connect: { ca: pki.caCertPem } });
  token = await msalToken({ clientSecret: emu.clientSecret });
});

afterAll(async () => {
  await emu.close();
  await dispatcher.close();
  rmSync(workDir, { recursive: true, force: true });
});

beforeEach(() => {
  emu.reset();
});

describe('Entra ID token endpoint', () => {
  it('issues a token for the client secret', async () => {
    const accessToken = await msalToken({ clientSecret: emu.clientSecret });
    expect(accessToken.split('.')).toHaveLength(3);
    expect(emu.tokenRequests).toMatchObject([{ ok: true, credential: 'secret' }]);
    expect((await sendMime(ALICE, mime('secret'), { auth: `Bearer ${accessToken}` })).status).toBe(202);
  });

  it('issues a token for a certificate assertion (PS256 + x5t#S256, and legacy RS256 + x5t)', async () => {
    const viaSha256 = await msalToken({
      clientCertificate: { thumbprintSha256: pki.clientThumbprintSha256, privateKey: pki.clientKeyPem, x5c: pki.clientCertPem },
    });
    const viaSha1 = await msalToken({ clientCertificate: { thumbprint: pki.clientThumbprintSha1, privateKey: pki.clientKeyPem } });
    expect(emu.tokenRequests).toMatchObject([{ ok: true, credential: 'certificate' }, { ok: true, credential: 'certificate' }]);
    expect((await sendMime(ALICE, mime('cert'), { auth: `Bearer ${viaSha256}` })).status).toBe(202);
    expect((await sendMime(ALICE, mime('cert1'), { auth: `Bearer ${viaSha1}` })).status).toBe(202);
  });

  it('accepts a configured federated assertion and records it', async () => {
    await msalToken({ clientAssertion: 'federated-token-from-kubelet' });
    expect(emu.tokenRequests).toMatchObject([{ ok: true, credential: 'assertion', assertion: 'federated-token-from-kubelet' }]);
  });

  it('rejects a wrong secret with 401 invalid_client AADSTS7000215', async () => {
    await expect(msalToken({ clientSecret: 'not-the-secret' })).rejects.toMatchObject({
      errorCode: 'invalid_client',
      errorMessage: expect.stringContaining('AADSTS7000215') as unknown,
    });
    expect(emu.tokenRequests).toMatchObject([{ ok: false, status: 401, credential: 'secret' }]);
  });

  it('rejects an assertion signed by a key other than the registered certificate', async () => {
    await expect(msalToken({ clientCertificate: { thumbprintSha256: pki.clientThumbprintSha256, privateKey: pki.serverKeyPem } }))
      .rejects.toMatchObject({ errorCode: 'invalid_client', errorMessage: expect.stringContaining('AADSTS700027') as unknown });
  });

  it('rejects a scope other than {graphUrl}/.default with invalid_scope', async () => {
    const res = await request(`${emu.authority}/oauth2/v2.0/token`, {
      method: 'POST', dispatcher,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: emu.clientId, client_secret: emu.clientSecret, scope: 'https://graph.microsoft.com/.default' }).toString(),
    });
    expect(res.statusCode).toBe(400);
    expect(await res.body.json()).toMatchObject({ error: 'invalid_scope', error_codes: [70011] });
  });

  it('issues a token for another resource only when told to (the benchmark\'s Graph sink)', async () => {
    const ask = (e: Emulator, resource: string) =>
      request(`${e.authority}/oauth2/v2.0/token`, {
        method: 'POST', dispatcher,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: e.clientId, client_secret: e.clientSecret, scope: `${resource}/.default` }).toString(),
      });
    const other = 'https://127.0.0.1:1';
    const refused = await ask(emu, other);
    expect(refused.statusCode).toBe(400);
    expect(await refused.body.json()).toMatchObject({ error: 'invalid_scope' });
    const wider = await startEmulator({ pki, otherResources: [other] });
    try {
      const ok = await ask(wider, other);
      expect(ok.statusCode).toBe(200);
      expect(await ok.body.json()).toMatchObject({ token_type: 'Bearer' });
      const stillRefused = await ask(wider, 'https://127.0.0.1:2');
      expect(stillRefused.statusCode).toBe(400);
      await stillRefused.body.dump();
    } finally {
      await wider.close();
    }
  });

  it('serves cloud instance discovery listing its own host', async () => {
    const res = await request(`${emu.graphUrl}/common/discovery/instance?api-version=1.1&authorization_endpoint=x`, { dispatcher });
    const body = (await res.body.json()) as { metadata: { aliases: string[] }[] };
    expect(body.metadata[0]?.aliases).toContain(new URL(emu.graphUrl).host);
  });
});

describe('Graph sendMail', () => {
  it('accepts strict base64 MIME with 202 and records the exact bytes', async () => {
    const message = mime('happy');
    const res = await sendMime(ALICE, message, { headers: { 'client-request-id': 'abc-123' } });
    expect(res.status).toBe(202);
    expect(res.text).toBe('');
    expect(res.headers['client-request-id']).toBe('abc-123');
    const [sent] = await emu.waitForSent(1);
    expect(sent?.mime?.equals(message)).toBe(true);
    expect(sent).toMatchObject({ upn: ALICE, requestId: res.headers['request-id'], contentType: 'text/plain', recipients: ['rcpt@example.org'] });
    expect(sent?.sha256).toBe(createHash('sha256').update(message).digest('hex'));
    expect(emu.stats().perMailbox[ALICE]).toMatchObject({ accepted: 1, maxInFlight: 1, throttled: 0 });
  });

  it('is as strict as Exchange on From and Sender: the mailbox or a Send As address, and no @ in the name', async () => {
    const withFrom = (from: string, extra = ''): Buffer => Buffer.from(`From: ${from}\r\n${extra}To: rcpt@example.org\r\nSubject: s\r\n\r\nx\r\n`);
    for (const [from, extra] of [['printer@printer.local', ''], [`"x@y.example" <${ALICE}>`, ''], [ALICE, 'Sender: printer@printer.local\r\n'], [`${ALICE}, other@contoso.example`, '']] as const) {
      const res = await sendMime(ALICE, withFrom(from, extra));
      expect(res.status, from + extra).toBe(403);
      expect(res.json().error?.code).toBe('ErrorSendAsDenied');
    }
    expect((await sendMime(ALICE, withFrom(`Alice <${ALICE.toUpperCase()}>`))).status).toBe(202);
    expect((await sendMime(ALICE, Buffer.from('To: rcpt@example.org\r\nSubject: no From\r\n\r\nx\r\n'))).status).toBe(202);
    emu.grantSendAs(ALICE, 'printer@printer.local');
    expect((await sendMime(ALICE, withFrom('printer@printer.local'))).status).toBe(202);
    const json = (from: string) => call('POST', `/v1.0/users/${ALICE}/sendMail`, {
      contentType: 'application/json',
      body: JSON.stringify({ message: { subject: 's', from: { emailAddress: { address: from } }, toRecipients: [{ emailAddress: { address: 'x@example.org' } }] } }),
    });
    expect((await json('boss@contoso.example')).status).toBe(403);
    expect((await json(ALICE)).status).toBe(202);
    expect(emu.sent).toHaveLength(4);
  });

  it('reads the whole header section for recipients, and refuses one over 256 KB (ErrorMessageSizeExceeded)', async () => {
    const filler = (n: number): string => Array.from({ length: n }, (_, i) => `X-Filler-${i}: ${'f'.repeat(990)}\r\n`).join('');
    const ok = await sendMime(ALICE, Buffer.from(`From: ${ALICE}\r\nTo: a@example.org\r\n${filler(200)}Cc: "b@x, y" <b@example.org>, g: c@example.org;\r\n\r\nx\r\n`));
    expect(ok.status).toBe(202);
    expect(emu.sent[0]!.recipients).toEqual(['a@example.org', 'b@example.org', 'c@example.org']);
    const big = await sendMime(ALICE, Buffer.from(`From: ${ALICE}\r\nTo: a@example.org\r\n${filler(263)}\r\nx\r\n`));
    expect(big.status).toBe(400);
    expect(big.json().error?.code).toBe('ErrorMessageSizeExceeded');
  });

  it('accepts a JSON message and rejects one without recipients', async () => {
    const ok = await call('POST', `/v1.0/users/${ALICE}/sendMail`, {
      contentType: 'application/json',
      body: JSON.stringify({ message: { subject: 's', toRecipients: [{ emailAddress: { address: 'x@example.org' } }] }, saveToSentItems: false }),
    });
    expect(ok.status).toBe(202);
    const bad = await call('POST', `/v1.0/users/${ALICE}/sendMail`, { contentType: 'application/json', body: JSON.stringify({ message: { subject: 's' } }) });
    expect(bad.status).toBe(400);
    expect(bad.json().error?.code).toBe('ErrorInvalidRecipients');
  });

  it.each([
    ['line breaks', (b64: string) => `${b64.slice(0, 8)}\r\n${b64.slice(8)}`],
    ['a missing pad', (b64: string) => `${b64}A`],
    ['a non-alphabet character', (b64: string) => `*${b64.slice(1)}`],
    ['an empty body', () => ''],
  ])('rejects base64 with %s as ErrorMimeContentInvalidBase64String', async (_name, mangle) => {
    const res = await call('POST', `/v1.0/users/${ALICE}/sendMail`, { contentType: 'text/plain', body: mangle(mime('bad').toString('base64')) });
    expect(res.status).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'ErrorMimeContentInvalidBase64String', innerError: { 'request-id': res.headers['request-id'] } });
    expect(emu.sent).toHaveLength(0);
  });

  it('answers 413 RequestEntityTooLarge to a body over 4 MB', async () => {
    const res = await call('POST', `/v1.0/users/${ALICE}/sendMail`, { contentType: 'text/plain', body: 'A'.repeat(4 * MiB + 4) });
    expect(res.status).toBe(413);
    expect(res.json().error?.code).toBe('RequestEntityTooLarge');
  });

  it('answers 401 InvalidAuthenticationToken without a valid token, and after revocation', async () => {
    // One signature character changed well inside the signature: the last two characters carry padding
    // bits, and replacing them decoded to the same signature about once in 240 runs.
    const at = token.length - 10;
    const tampered = `${token.slice(0, at)}${token[at] === 'A' ? 'B' : 'A'}${token.slice(at + 1)}`;
    for (const auth of [null, 'Bearer not-a-jwt', `Bearer ${tampered}`]) {
      const res = await sendMime(ALICE, mime('noauth'), { auth });
      expect(res.status).toBe(401);
      expect(res.json().error?.code).toBe('InvalidAuthenticationToken');
    }
    const fresh = await msalToken({ clientSecret: emu.clientSecret });
    emu.revokeTokens();
    expect((await sendMime(ALICE, mime('revoked'), { auth: `Bearer ${fresh}` })).status).toBe(401);
    token = await msalToken({ clientSecret: emu.clientSecret });
    expect((await sendMime(ALICE, mime('after'))).status).toBe(202);
  });

  it('answers 404 ErrorInvalidUser for a mailbox outside the configured list', async () => {
    const res = await sendMime('nobody@contoso.example', mime('x'));
    expect(res.status).toBe(404);
    expect(res.json().error?.code).toBe('ErrorInvalidUser');
  });

  it('throttles the 5th concurrent request to one mailbox with 429 and leaves other mailboxes alone', async () => {
    emu.setFaults({ latencyMs: 1000 });
    let admittedCount = 0;
    const fourInFlight = new Promise<void>((resolve) => {
      const onAdmitted = (entry: RequestLogEntry): void => {
        if (entry.upn === ALICE && ++admittedCount === 4) {
          emu.off('admitted', onAdmitted);
          resolve();
        }
      };
      emu.on('admitted', onAdmitted);
    });
    const firstFour = [1, 2, 3, 4].map((i) => sendMime(ALICE, mime(`c${i}`)));
    await fourInFlight;
    const [fifth, bob] = await Promise.all([sendMime(ALICE, mime('c5')), sendMime(BOB, mime('bob'))]);
    expect(fifth.status).toBe(429);
    expect(bob.status).toBe(202);
    expect((await Promise.all(firstFour)).map((r) => r.status)).toEqual([202, 202, 202, 202]);
    const throttled = fifth;
    expect(throttled.headers['retry-after']).toBe('1');
    expect(throttled.json().error).toMatchObject({ code: 'ApplicationThrottled', message: 'Application is over its MailboxConcurrency limit.' });
    const stats = emu.stats();
    expect(stats.perMailbox[ALICE]).toMatchObject({ accepted: 4, maxInFlight: 4, throttled: 1 });
    expect(stats.perMailbox[BOB]).toMatchObject({ accepted: 1, throttled: 0 });
    expect(stats.throttled429).toBe(1);
  });

  it('plays a scripted 429 with Retry-After, then accepts', async () => {
    emu.script(ALICE, [{ status: 429, retryAfter: 7 }]);
    const first = await sendMime(ALICE, mime('s1'));
    expect(first.status).toBe(429);
    expect(first.headers['retry-after']).toBe('7');
    expect((await sendMime(ALICE, mime('s2'))).status).toBe(202);
    expect(emu.sent).toHaveLength(1);
  });

  it('resets the connection for a scripted reset without recording the mail', async () => {
    emu.script('*', [{ reset: true }, { resetBeforeBody: true }]);
    await expect(sendMime(ALICE, mime('r1'))).rejects.toThrow();
    await expect(sendMime(ALICE, mime('r2'))).rejects.toThrow();
    expect((await sendMime(ALICE, mime('r3'))).status).toBe(202);
    expect(emu.sent.map((s) => s.mime?.toString())).toEqual([mime('r3').toString()]);
    expect(emu.requests.map((r) => r.reset)).toEqual([true, true, false]);
  });

  it('answers 503 or drops connections while down, while tokens keep working', async () => {
    emu.setDown('503');
    expect((await sendMime(ALICE, mime('d1'))).status).toBe(503);
    emu.setDown('reset');
    await expect(sendMime(ALICE, mime('d2'))).rejects.toThrow();
    await msalToken({ clientSecret: emu.clientSecret });
    emu.setDown(false);
    expect((await sendMime(ALICE, mime('d3'))).status).toBe(202);
  });
});

describe('Graph Sent Items', () => {
  const sentItemsUrl = (upn: string, id: string): string =>
    `/v1.0/users/${encodeURIComponent(upn)}/mailFolders/sentitems/messages?$filter=${encodeURIComponent(`internetMessageId eq '${id.replace(/'/g, "''")}'`)}&$select=id,internetMessageId,sentDateTime`;
  const lookUp = async (upn: string, id: string, auth?: string): Promise<{ status: number; ids: string[]; code?: string }> => {
    const res = await call('GET', sentItemsUrl(upn, id), auth ? { auth } : {});
    const body = res.json();
    return { status: res.status, ids: Array.isArray(body['value']) ? (body['value'] as { internetMessageId: string }[]).map((v) => v.internetMessageId) : [], ...(body.error?.code ? { code: body.error.code } : {}) };
  };
  const withId = (subject: string, id: string): Buffer => Buffer.from(mime(subject).toString().replace('Subject:', `Message-ID: ${id}\r\nSubject:`));

  it('shows what was sent with a copy kept, after the configured delay, by its Message-ID; JSON with saveToSentItems false leaves none', async () => {
    emu.setFaults({ sentItemsDelayMs: 300 });
    expect((await sendMime(ALICE, withId('kept', "<kept'1@contoso.example>"))).status).toBe(202);
    expect(await lookUp(ALICE, "<kept'1@contoso.example>")).toEqual({ status: 200, ids: [] }); // not there yet
    const json = (save: boolean, extra: Record<string, unknown> = {}) => call('POST', `/v1.0/users/${ALICE}/sendMail`, {
      contentType: 'application/json',
      body: JSON.stringify({ message: { subject: 'j', toRecipients: [{ emailAddress: { address: 'x@example.org' } }], ...extra }, ...(save ? {} : { saveToSentItems: false }) }),
    });
    expect((await json(true)).status).toBe(202);
    const keptJson = emu.sent.at(-1)!.internetMessageId;
    expect((await json(false)).status).toBe(202);
    const goneJson = emu.sent.at(-1)!.internetMessageId;
    // A JSON sendMail may not set internetMessageId (Exchange makes one up); a draft may.
    const refused = await json(true, { internetMessageId: '<mine@contoso.example>' });
    expect([refused.status, refused.json().error?.code]).toEqual([400, 'ErrorInvalidPropertySet']);
    await new Promise((resolve) => setTimeout(resolve, 350)); // the emulator's own delay, the thing under test
    expect(await lookUp(ALICE, "<kept'1@contoso.example>")).toEqual({ status: 200, ids: ["<kept'1@contoso.example>"] });
    expect((await lookUp(ALICE, keptJson)).ids).toEqual([keptJson]);
    expect((await lookUp(ALICE, goneJson)).ids).toEqual([]);
    expect((await lookUp(BOB, "<kept'1@contoso.example>")).ids).toEqual([]); // another mailbox's Sent Items
    // Without a Message-ID, Exchange makes one up.
    expect((await sendMime(ALICE, mime('no id'))).status).toBe(202);
    expect(emu.sent.at(-1)!.internetMessageId).toMatch(/^<[0-9A-F]{32}@EMULATOR\.PROD\.OUTLOOK\.COM>$/);
  });

  it('answers 403 ErrorAccessDenied to a token whose roles lack a read permission', async () => {
    emu.setRoles(['Mail.Send']);
    const sendOnly = await msalToken({ clientSecret: emu.clientSecret });
    expect(await lookUp(ALICE, '<x@y>', `Bearer ${sendOnly}`)).toMatchObject({ status: 403, code: 'ErrorAccessDenied' });
    emu.setRoles(['Mail.Send', 'Mail.ReadBasic.All']);
    expect((await lookUp(ALICE, '<x@y>', `Bearer ${await msalToken({ clientSecret: emu.clientSecret })}`)).status).toBe(200);
  });

  it('records a submission and then drops the connection, never answers, or answers a 5xx, as scripted or at random', async () => {
    emu.script(ALICE, [{ op: 'sendMail', acceptThenReset: true }, { op: 'sendMail', acceptThenStatus: 502 }]);
    await expect(sendMime(ALICE, withId('a', '<a@x>'))).rejects.toThrow();
    expect((await sendMime(ALICE, withId('b', '<b@x>'))).status).toBe(502);
    emu.script(ALICE, [{ op: 'sendMail', acceptThenHang: true }]);
    const hung = new Agent({ connect: { ca: pki.caCertPem }, headersTimeout: 500 });
    try {
      const res = request(`${emu.graphUrl}/v1.0/users/${ALICE}/sendMail`, { method: 'POST', dispatcher: hung, headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body: withId('c', '<c@x>').toString('base64') });
      await expect(res).rejects.toThrow(/Headers Timeout/i);
    } finally {
      await hung.close();
    }
    emu.setFaults({ acceptThenResetRate: 1 });
    await expect(sendMime(ALICE, withId('d', '<d@x>'))).rejects.toThrow();
    expect(emu.sent.map((s) => s.internetMessageId)).toEqual(['<a@x>', '<b@x>', '<c@x>', '<d@x>']);
  });
});

describe('roles and tenants', () => {
  const OTHER = { tenantId: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d', clientId: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e', clientSecret: 'other~secret', mailboxes: ['scans@fabrikam.example'] };
  let multi: Emulator;
  beforeAll(async () => {
    multi = await startEmulator({ pki, tenants: [OTHER] });
  });
  afterAll(async () => {
    await multi.close();
  });
  const tokenFrom = async (tenantId: string, clientId: string, clientSecret: string): Promise<string> => {
    const app = new ConfidentialClientApplication({
      auth: { clientId, clientSecret, authority: `${multi.authorityHost}/${tenantId}`, knownAuthorities: [new URL(multi.authorityHost).host] },
      system: { networkClient: networkClient(dispatcher) },
    });
    return (await app.acquireTokenByClientCredential({ scopes: [`${multi.graphUrl}/.default`] }))!.accessToken;
  };
  const post = async (upn: string, op: 'sendMail' | 'messages', bearer: string): Promise<number> => {
    const own = Buffer.from(`From: ${upn}\r\nTo: rcpt@example.org\r\nSubject: x\r\n\r\nhi\r\n`);
    const body = op === 'sendMail' ? own.toString('base64') : JSON.stringify({ subject: 'draft', toRecipients: [{ emailAddress: { address: 'rcpt@example.org' } }] });
    const res = await request(`${multi.graphUrl}/v1.0/users/${encodeURIComponent(upn)}/${op}`, { method: 'POST', dispatcher, headers: { authorization: `Bearer ${bearer}`, 'content-type': op === 'sendMail' ? 'text/plain' : 'application/json' }, body });
    await res.body.dump();
    return res.statusCode;
  };

  it('a token with roles may do only what they grant (drafts need Mail.ReadWrite); without roles Exchange decides', async () => {
    multi.setRoles(['Mail.Send']);
    const sendOnly = await tokenFrom(multi.tenantId, multi.clientId, multi.clientSecret);
    expect(await post('sender@contoso.example', 'messages', sendOnly)).toBe(403);
    expect(await post('sender@contoso.example', 'sendMail', sendOnly)).toBe(202);
    multi.setRoles([]);
    expect(await post('sender@contoso.example', 'messages', await tokenFrom(multi.tenantId, multi.clientId, multi.clientSecret))).toBe(201);
    multi.reset();
  });

  it('serves another tenant with its own app and mailboxes, records which tenant sent, and every peer', async () => {
    const other = await tokenFrom(OTHER.tenantId, OTHER.clientId, OTHER.clientSecret);
    expect(await post('scans@fabrikam.example', 'sendMail', other)).toBe(202);
    expect(await post('scans@contoso.example', 'sendMail', other)).toBe(404);
    expect(multi.sent.map((r) => [r.upn, r.tenantId])).toEqual([['scans@fabrikam.example', OTHER.tenantId]]);
    await expect(tokenFrom(OTHER.tenantId, multi.clientId, multi.clientSecret)).rejects.toThrow(/AADSTS700016/);
    expect(multi.tokenRequests.map((t) => [t.tenantId, t.ok])).toEqual([[OTHER.tenantId, true], [OTHER.tenantId, false]]);
    expect(multi.peers.length).toBeGreaterThan(3);
    expect(new Set(multi.peers.map((p) => p.remoteAddress))).toEqual(new Set(['127.0.0.1']));
    multi.reset();
  });
});

describe('Graph large-message path', () => {
  const draftsUrl = `/v1.0/users/${encodeURIComponent(ALICE)}/messages`;

  async function createDraft(): Promise<string> {
    const res = await call('POST', draftsUrl, { contentType: 'text/plain', body: mime('large').toString('base64') });
    expect(res.status).toBe(201);
    const id = res.json()['id'];
    if (typeof id !== 'string') throw new Error('draft id missing');
    return id;
  }

  it('builds a draft with a small attachment and an upload session, enforcing chunk order, then sends it', async () => {
    const id = await createDraft();
    const draftUrl = `${draftsUrl}/${encodeURIComponent(id)}`;
    const small = randomBytes(1000);
    const attach = await call('POST', `${draftUrl}/attachments`, {
      contentType: 'application/json',
      body: JSON.stringify({ '@odata.type': '#microsoft.graph.fileAttachment', name: 'small.bin', contentType: 'application/octet-stream', contentBytes: small.toString('base64') }),
    });
    expect(attach.status).toBe(201);

    const big = randomBytes(3 * MiB + 12345);
    const tooSmall = await call('POST', `${draftUrl}/attachments/createUploadSession`, {
      contentType: 'application/json', body: JSON.stringify({ AttachmentItem: { attachmentType: 'file', name: 'x', size: 1000 } }),
    });
    expect(tooSmall.json().error?.code).toBe('ErrorAttachmentSizeShouldNotBeLessThanMinimumSize');
    const session = await call('POST', `${draftUrl}/attachments/createUploadSession`, {
      contentType: 'application/json', body: JSON.stringify({ AttachmentItem: { attachmentType: 'file', name: 'big.bin', size: big.length } }),
    });
    expect(session.status).toBe(201);
    expect(session.json()).toMatchObject({ nextExpectedRanges: ['0-'] });
    const uploadUrl = session.json()['uploadUrl'] as string;

    const put = (from: number, to: number, auth: string | null = null): Promise<GraphResponse> =>
      call('PUT', uploadUrl, { auth, body: big.subarray(from, to), headers: { 'content-range': `bytes ${from}-${to - 1}/${big.length}` } });
    expect((await put(0, 2 * MiB, `Bearer ${token}`)).status).toBe(401);
    const first = await put(0, 2 * MiB);
    expect(first.status).toBe(200);
    expect(first.json()).toMatchObject({ nextExpectedRanges: [`${2 * MiB}-`] });
    const outOfOrder = await put(2 * MiB + 10, big.length);
    expect(outOfOrder.status).toBe(416);
    expect(outOfOrder.json().error?.innerError?.['request-id']).toBe(outOfOrder.headers['request-id']);
    const last = await put(2 * MiB, big.length);
    expect(last.status).toBe(201);
    expect(emu.drafts(ALICE)[0]?.attachments.map((a) => a.name)).toEqual(['small.bin', 'big.bin']);

    const send = await call('POST', `${draftUrl}/send`);
    expect(send.status).toBe(202);
    expect(emu.drafts(ALICE)).toEqual([]);
    const [sent] = await emu.waitForSent(1);
    expect(sent).toMatchObject({ via: 'draft', draftId: id, upn: ALICE });
    expect(emu.sentDrafts).toHaveLength(1);
    expect(sent?.attachments?.map((a) => a.sha256)).toEqual([small, big].map((b) => createHash('sha256').update(b).digest('hex')));
    expect(emu.stats().perMailbox[ALICE]?.accepted).toBe(1);
  });

  it('deletes a draft, leaving no orphan', async () => {
    const id = await createDraft();
    expect(emu.drafts(ALICE).map((d) => d.id)).toEqual([id]);
    expect((await call('DELETE', `${draftsUrl}/${encodeURIComponent(id)}`)).status).toBe(204);
    expect(emu.drafts(ALICE)).toEqual([]);
    const again = await call('DELETE', `${draftsUrl}/${encodeURIComponent(id)}`);
    expect(again.status).toBe(404);
    expect(again.json().error?.code).toBe('ErrorItemNotFound');
  });
});

describe('standalone runner', () => {
  it('prints its connection details and serves /_emulator/stats until SIGTERM', async () => {
    const dir = join(workDir, 'runner');
    const mainTs = fileURLToPath(new URL('./emulator/main.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', mainTs, '--port', '0', '--dir', dir, '--latency-ms', '5'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const lines = createInterface({ input: child.stdout });
      const [line] = (await Promise.race([
        lines[Symbol.asyncIterator]().next().then((r) => [r.value as string]),
        exited.then((code) => { throw new Error(`runner exited early (${String(code)})`); }),
      ])) as [string];
      const info = JSON.parse(line) as Record<string, string>;
      expect(Object.keys(info)).toEqual(expect.arrayContaining(['graphUrl', 'authorityHost', 'tenantId', 'clientId', 'clientSecret', 'caCertPath', 'controlUrl']));
      const agent = new Agent({ connect: { ca: readFileSync(info['caCertPath'] ?? '', 'utf8') } });
      const res = await request(`${info['controlUrl']}/stats`, { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toMatchObject({ requests: 0, throttled429: 0, perMailbox: {} });
      const control = async (method: 'GET' | 'POST', action: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
        const r = await request(`${info['controlUrl']}/${action}`, {
          method, dispatcher: agent, headers: { 'content-type': 'application/json' }, body: body === undefined ? null : JSON.stringify(body),
        });
        return { status: r.statusCode, json: await r.body.json() };
      };
      expect(await control('POST', 'faults', { latencyMs: 1, mailboxConcurrency: 2, sentItemsDelayMs: 250, down: '503' })).toEqual({
        status: 200,
        json: { faults: { latencyMs: 1, jitterMs: 0, randomFaultRate: 0, mailboxConcurrency: 2, sentItemsDelayMs: 250, acceptThenResetRate: 0, acceptThenHangRate: 0 }, down: '503' },
      });
      expect((await control('POST', 'faults', { acceptThenHangRate: 2 })).status).toBe(400);
      expect((await control('POST', 'faults', { bogus: 1 })).status).toBe(400);
      expect(await control('POST', 'script', { upn: '*', steps: [{ status: 503 }] })).toEqual({ status: 200, json: { ok: true } });
      expect(await control('GET', 'sent')).toEqual({ status: 200, json: [] });
      expect((await control('POST', 'reset')).status).toBe(200);
      await agent.close();
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 30_000);
});

/** The Sent Items look-up over the relay's real HTTP client, against a small local server that answers as Graph does. */

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TokenProvider } from '../../src/auth/token-provider.js';
import { GraphHttp } from '../../src/graph/http.js';
import { Outbound } from '../../src/net/outbound.js';
import { findInSentItems, leavesSentItemsCopy, lookupPermission, sentItemsQuery } from '../../src/graph/sent-items.js';

const jwt = (payload: Record<string, unknown>): string => `x.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.y`;
const tokens = (roles?: string[]): TokenProvider => ({ lastSuccessAt: null, getToken: async () => jwt(roles ? { roles } : {}) });

let server: Server;
let http: GraphHttp;
let net: Outbound;
const seen: IncomingMessage[] = [];
/** What the server answers next: status and JSON body. */
let answer: { status: number; body: unknown } = { status: 200, body: { value: [] } };

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(req);
    const body = Buffer.from(JSON.stringify(answer.body));
    res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': String(body.length), 'request-id': 'req-1' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  net = new Outbound({ connectTimeoutMs: 2000, headersTimeoutMs: 2000, bodyTimeoutMs: 2000, connections: 2, proxy: null });
  http = new GraphHttp(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, net);
});

afterAll(async () => {
  await net.close();
  await new Promise((resolve) => server.close(resolve));
});

const q = { mailbox: 'scans@contoso.example', internetMessageId: "<o'brien.1@x.example>", sentAfterMs: Date.UTC(2026, 0, 1) };

describe('Sent Items look-up', () => {
  it('asks for the Message-ID in the mailbox\'s Sent Items, quoted for OData and encoded for the URL', () => {
    const path = sentItemsQuery(q.mailbox, q.internetMessageId);
    expect(path.startsWith('/v1.0/users/scans%40contoso.example/mailFolders/sentitems/messages?$filter=')).toBe(true);
    expect(new URL(path, 'https://graph.invalid').searchParams.get('$filter')).toBe("internetMessageId eq '<o''brien.1@x.example>'");
    expect(path).toContain('&$select=id,internetMessageId,sentDateTime');
  });

  it('finds a copy sent after the message was accepted; one sent before is another message that reused the id', async () => {
    answer = { status: 200, body: { value: [{ id: 'a', internetMessageId: "<O'Brien.1@x.example>", sentDateTime: '2026-01-01T00:00:05Z' }] } };
    expect(await findInSentItems(http, tokens(['Mail.Send', 'Mail.ReadBasic.All']), q)).toEqual({ kind: 'found', status: 200, requestId: 'req-1' });
    expect(seen.at(-1)!.method).toBe('GET');
    answer = { status: 200, body: { value: [{ id: 'a', internetMessageId: "<o'brien.1@x.example>", sentDateTime: '2025-12-31T23:00:00Z' }] } };
    expect(await findInSentItems(http, tokens(), q)).toMatchObject({ kind: 'not-found' });
    answer = { status: 200, body: { value: [] } };
    expect(await findInSentItems(http, tokens(), q)).toMatchObject({ kind: 'not-found' });
  });

  it('a token without a read role asks nothing; a 403 or a refused query is "unavailable"; a 5xx or throttle is "failed" for now', async () => {
    const before = seen.length;
    expect(await findInSentItems(http, tokens(['Mail.Send']), q)).toEqual({ kind: 'unavailable', why: 'no-role' });
    expect(seen.length).toBe(before);
    answer = { status: 403, body: { error: { code: 'ErrorAccessDenied', message: 'Access is denied.' } } };
    expect(await findInSentItems(http, tokens(), q)).toMatchObject({ kind: 'unavailable', why: 'forbidden', status: 403, code: 'ErrorAccessDenied' });
    answer = { status: 400, body: { error: { code: 'BadRequest', message: 'Invalid filter clause' } } };
    expect(await findInSentItems(http, tokens(), q)).toMatchObject({ kind: 'unavailable', why: 'http-400' });
    answer = { status: 503, body: { error: { code: 'ServiceUnavailable', message: 'busy' } } };
    expect(await findInSentItems(http, tokens(), q)).toMatchObject({ kind: 'failed', verdict: { kind: 'transient', reason: 'service-unavailable' }, status: 503 });
    answer = { status: 502, body: {} };
    // A look-up submits nothing: a 5xx leaves no outcome unknown.
    const failed = await findInSentItems(http, tokens(), q);
    expect(failed).toMatchObject({ kind: 'failed', verdict: { kind: 'transient', reason: 'http-502' } });
    expect(failed.kind === 'failed' && failed.verdict.outcomeUnknown).toBeFalsy();
  });

  it('reads the roles claim: granted, missing, or unknown (no claim: RBAC for Applications)', () => {
    expect(lookupPermission(jwt({ roles: ['Mail.Send', 'Mail.Read'] }))).toBe('granted');
    expect(lookupPermission(jwt({ roles: ['Mail.Send'] }))).toBe('missing');
    expect(lookupPermission(jwt({}))).toBe('unknown');
    expect(lookupPermission('not a token')).toBe('unknown');
  });

  it('knows which routes leave a copy: MIME sendMail and the draft route, not JSON sendMail (saveToSentItems false)', () => {
    expect([leavesSentItemsCopy('mime'), leavesSentItemsCopy('large'), leavesSentItemsCopy('json'), leavesSentItemsCopy('capture')]).toEqual([true, true, false, false]);
  });
});

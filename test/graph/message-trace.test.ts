/** Graph's message trace as the emulator serves it: found by Message-ID and time, per recipient; without the role, a 403 read as "not granted". */

import { readFileSync } from 'node:fs';
import { Agent, request, setGlobalDispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messageTrace, tokenRoles, TRACE_ROLE } from '../../src/graph/message-trace.js';
import { startEmulator, type Emulator } from '../emulator/emulator.js';

let emu: Emulator;

async function token(): Promise<string> {
  const res = await request(`${emu.authority}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: emu.clientId, client_secret: emu.clientSecret, scope: `${emu.graphUrl}/.default` }).toString(),
  });
  return ((await res.body.json()) as { access_token: string }).access_token;
}

async function sendOne(t: string, messageId: string, to: string[]): Promise<void> {
  const mime = Buffer.from(`From: scans@contoso.example\r\nTo: ${to.join(', ')}\r\nMessage-ID: ${messageId}\r\nSubject: scan\r\n\r\nhello\r\n`).toString('base64');
  const res = await request(`${emu.graphUrl}/v1.0/users/scans@contoso.example/sendMail`, { method: 'POST', headers: { authorization: `Bearer ${t}`, 'content-type': 'text/plain' }, body: mime });
  await res.body.dump();
  expect(res.statusCode).toBe(202);
}

beforeAll(async () => {
  emu = await startEmulator({ roles: ['Mail.Send', TRACE_ROLE] });
  // The relay trusts the emulator through NODE_EXTRA_CA_CERTS; in-process, the global dispatcher does.
  setGlobalDispatcher(new Agent({ connect: { ca: readFileSync(emu.caCertPath) } }));
});
afterAll(async () => {
  await emu.close();
});

describe('message trace', () => {
  it('gives Exchange\'s status for each recipient of the message with that Message-ID, within the window', async () => {
    const t = await token();
    expect(tokenRoles(t)).toContain(TRACE_ROLE);
    emu.setTraceStatus('bob@contoso.example', 'failed');
    await sendOne(t, '<scan-42@printer3>', ['alice@contoso.example', 'bob@contoso.example']);
    await sendOne(t, '<other@printer3>', ['carol@contoso.example']);
    const now = Date.now();
    const r = await messageTrace(emu.graphUrl, t, { messageId: '<scan-42@printer3>', since: now - 60_000, until: now + 60_000 });
    expect(r.status).toBe('ok');
    const rows = r.status === 'ok' ? r.rows : [];
    expect(rows.map((x) => [x.recipient, x.status]).sort()).toEqual([
      ['alice@contoso.example', 'delivered'],
      ['bob@contoso.example', 'failed'],
    ]);
    // Outside the window: nothing.
    const early = await messageTrace(emu.graphUrl, t, { messageId: '<scan-42@printer3>', since: now - 120_000, until: now - 60_000 });
    expect(early).toEqual({ status: 'ok', rows: [] });
  });

  it('without ExchangeMessageTrace.Read.All: "no-permission", saying what granting it would add', async () => {
    emu.setRoles(['Mail.Send']);
    const t = await token();
    const asked = emu.traceRequests;
    // The token says so already: Graph is not even asked.
    const r = await messageTrace(emu.graphUrl, t, { messageId: '<scan-42@printer3>', since: 0, until: Date.now() });
    expect(r).toMatchObject({ status: 'no-permission', message: expect.stringContaining(TRACE_ROLE) });
    expect(emu.traceRequests).toBe(asked);
    // A token without a roles claim is asked, and Graph's 403 says the same.
    emu.setRoles([]);
    const bare = await token();
    expect(tokenRoles(bare)).toEqual([]);
    expect(await messageTrace(emu.graphUrl, bare, { messageId: '<scan-42@printer3>', since: 0, until: Date.now() })).toMatchObject({ status: 'no-permission' });
    expect(emu.traceRequests).toBe(asked + 1);
  });
});

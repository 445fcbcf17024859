/**
 * Several Graph accounts in one relay (issue 20): two emulated tenants on one Graph origin, each message
 * sent with the token of the account chosen at MAIL FROM (user, mapping, listener, mailbox domain, default),
 * kept in its envelope across a restart; a token cache, readiness, metrics and log field per account.
 */

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/config/password-hash.js';
import type { Emulator } from '../emulator/emulator.js';
import { graphSection, message, useTestbed } from '../helpers/graph-relay.js';
import { startRelay, type LogLine, type RelayProcess } from '../helpers/relay-process.js';
import { pySend } from '../helpers/smtp-clients.js';

const FABRIKAM = { tenantId: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d', clientId: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e', clientSecret: 'fabrikam~other-secret' };
const PASSWORD = 'sales-device-password';
const bed = useTestbed({ tenants: [FABRIKAM] });
let hash = '';
beforeAll(async () => {
  hash = await hashPassword(PASSWORD);
});

const fabrikamAccount = (emu: Emulator, over: Record<string, unknown> = {}) => ({ name: 'fabrikam', graphUrl: emu.graphUrl, authorityHost: emu.authorityHost, ...FABRIKAM, domains: ['fabrikam.example'], ...over });

/** Two tenants, a listener for fabrikam's site, a mapping and an AUTH user that name accounts. */
function twoTenants(emu: Emulator, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    accounts: [fabrikamAccount(emu)],
    listeners: [
      { name: 'default', host: '127.0.0.1', port: 0, auth: 'optional', allowInsecureAuth: true },
      { name: 'fabrikam-site', host: '127.0.0.1', port: 0, account: 'fabrikam' },
    ],
    users: [{ username: 'sales', passwordHash: hash, allowedSenders: ['@contoso.example'], account: 'fabrikam' }],
    mailboxes: { senderDomains: ['contoso.example', 'fabrikam.example'], map: { '@legacy.local': { mailbox: 'erp@fabrikam.example', account: 'default' } } },
    admin: { port: 0 },
    ...over,
  };
}

const mail = (from: string, subject: string): Buffer => message({ From: from, To: 'someone@example.org', Subject: subject }, 'hello\r\n');
const sent = (emu: Emulator, upn: string) => emu.sent.find((s) => s.upn === upn);
const adminPort = async (r: RelayProcess): Promise<number> => Number((await r.waitForLog((l) => l.event === 'admin-listening')).port);

async function metrics(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return new Map(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]));
}

/** Every log line about a message (it has a queue id) names its account. */
function expectAccountOnMessageLines(logs: LogLine[]): void {
  const about = logs.filter((l) => typeof l.qid === 'string');
  expect(about.length).toBeGreaterThan(0);
  expect(about.filter((l) => typeof l['account'] !== 'string').map((l) => l.event)).toEqual([]);
}

describe('several Graph accounts', () => {
  it('sends each message with its account’s own token, by the mailbox domain; tokens, readiness, metrics and logs per account', async () => {
    const relay = await bed.relay(twoTenants(bed.emu));
    expect(await pySend(relay.smtpPort, 'printer@contoso.example', ['someone@example.org'], mail('printer@contoso.example', 'contoso'))).toMatchObject({ ok: true });
    expect(await pySend(relay.smtpPort, 'scanner@fabrikam.example', ['someone@example.org'], mail('scanner@fabrikam.example', 'fabrikam'))).toMatchObject({ ok: true });
    await bed.emu.waitForSent(2);
    expect(sent(bed.emu, 'printer@contoso.example')?.tenantId).toBe(bed.emu.tenantId);
    expect(sent(bed.emu, 'scanner@fabrikam.example')?.tenantId).toBe(FABRIKAM.tenantId);
    // One token per account, each from its own tenant, each cached for the account's next messages.
    const tokens = bed.emu.tokenRequests.filter((t) => t.ok).map((t) => t.tenantId);
    expect(tokens.sort()).toEqual([bed.emu.tenantId, FABRIKAM.tenantId].sort());
    const received = await relay.waitForLogs((l) => l.event === 'received', 2);
    expect(received.map((l) => [l['account'], l['accountRule']])).toEqual([['default', 'default'], ['fabrikam', 'domain']]);
    await relay.waitForLogs((l) => l.event === 'delivered', 2);
    expectAccountOnMessageLines(relay.logs);
    expect((await relay.waitForLogs((l) => l.event === 'permissions', 2)).map((l) => l['account']).sort()).toEqual(['default', 'fabrikam']);
    const port = await adminPort(relay);
    const m = await metrics(port);
    expect(m.get('relay_messages_delivered_total{route="mime",account="default"}')).toBe(1);
    expect(m.get('relay_messages_delivered_total{route="mime",account="fabrikam"}')).toBe(1);
    expect(m.get('relay_messages_received_total{account="fabrikam"}')).toBe(1);
    expect(m.get('relay_token_acquisitions_total{result="success",account="fabrikam"}')).toBe(1);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { spool: 'ok', 'token:default': 'ok', 'token:fabrikam': 'ok' } });
    expect((await fetch(`http://127.0.0.1:${port}/readyz?account=fabrikam`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/readyz?account=nope`)).status).toBe(503);
  });

  it('one order decides: the AUTH user’s account, then the mapping’s, then the listener’s, then the domain', async () => {
    const relay = await bed.relay(twoTenants(bed.emu));
    // The listener names fabrikam: it wins over contoso.example's (default) account.
    expect(await pySend(relay.ports['fabrikam-site']!, 'printer@contoso.example', ['someone@example.org'], mail('printer@contoso.example', 'site'))).toMatchObject({ ok: true });
    // The mapping names default: it wins over the fabrikam.example domain of its mailbox.
    expect(await pySend(relay.smtpPort, 'erp@legacy.local', ['someone@example.org'], mail('erp@legacy.local', 'legacy'))).toMatchObject({ ok: true });
    // The AUTH user names fabrikam: it wins over the domain.
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, secure: false, ignoreTLS: true, auth: { user: 'sales', pass: PASSWORD } });
    await t.sendMail({ from: 'sales@contoso.example', to: 'someone@example.org', subject: 'user', text: 'hi' });
    t.close();
    await bed.emu.waitForSent(3);
    expect(sent(bed.emu, 'printer@contoso.example')?.tenantId).toBe(FABRIKAM.tenantId);
    expect(sent(bed.emu, 'erp@fabrikam.example')?.tenantId).toBe(bed.emu.tenantId);
    expect(sent(bed.emu, 'sales@contoso.example')?.tenantId).toBe(FABRIKAM.tenantId);
    const rules = (await relay.waitForLogs((l) => l.event === 'received', 3)).map((l) => [l['from'], l['account'], l['accountRule']]);
    expect(rules).toEqual([
      ['printer@contoso.example', 'fabrikam', 'listener'],
      ['erp@legacy.local', 'default', 'mapping'],
      ['sales@contoso.example', 'fabrikam', 'user'],
    ]);
  });

  it('keeps the account decided at acceptance in the envelope: after a restart with another configuration, it still goes out through it', async () => {
    bed.emu.setDown('503');
    const first = await bed.relay(twoTenants(bed.emu));
    expect(await pySend(first.ports['fabrikam-site']!, 'printer@contoso.example', ['someone@example.org'], mail('printer@contoso.example', 'kept'))).toMatchObject({ ok: true });
    await first.waitForLog((l) => l.event === 'deferred');
    await first.kill();
    const queue = path.join(first.spoolDir, 'queue');
    const msg = readdirSync(queue).find((f) => f.endsWith('.msg'))!;
    expect(readFileSync(path.join(queue, msg), 'utf8')).toContain('"account":"fabrikam"');
    bed.emu.setDown(false);
    // The site listener no longer names an account: today's rules would pick the default account.
    const config = twoTenants(bed.emu);
    (config.listeners as Record<string, unknown>[])[1]!.account = null;
    const second = await bed.relay(config, { dir: first.dir });
    await bed.emu.waitForSent(1);
    expect(sent(bed.emu, 'printer@contoso.example')?.tenantId).toBe(FABRIKAM.tenantId);
    expect(await second.waitForLog((l) => l.event === 'delivered')).toMatchObject({ account: 'fabrikam' });
  });

  it('without a default account, a sender no rule places is refused at MAIL FROM; the others are sent', async () => {
    const config = twoTenants(bed.emu, { graph: { graphUrl: bed.emu.graphUrl, authorityHost: bed.emu.authorityHost }, mailboxes: { senderDomains: ['contoso.example', 'fabrikam.example'] }, users: [], listeners: undefined });
    const relay = await startRelay({ config: { hostname: 'relay.test', delivery: { mode: 'graph' }, ...config }, env: { NODE_EXTRA_CA_CERTS: bed.emu.caCertPath } });
    try {
      const refused = await pySend(relay.smtpPort, 'printer@contoso.example', ['someone@example.org'], mail('printer@contoso.example', 'nowhere'));
      expect(refused).toMatchObject({ ok: false, code: 550 });
      expect(refused.message).toMatch(/^5\.7\.1 no Graph account for mailbox <printer@contoso.example>/);
      expect(await pySend(relay.smtpPort, 'scanner@fabrikam.example', ['someone@example.org'], mail('scanner@fabrikam.example', 'placed'))).toMatchObject({ ok: true });
      await bed.emu.waitForSent(1);
      expect(bed.emu.sent[0]).toMatchObject({ upn: 'scanner@fabrikam.example', tenantId: FABRIKAM.tenantId });
    } finally {
      await relay.kill();
    }
  });

  it('one account that cannot get a token leaves the relay ready for the others; its own readiness says why, and its mail waits', async () => {
    const relay = await bed.relay(twoTenants(bed.emu, { accounts: [fabrikamAccount(bed.emu, { clientSecret: 'wrong' })] }));
    await relay.waitForLog((l) => l.event === 'token-failed' && l['account'] === 'fabrikam');
    const port = await adminPort(relay);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { checks: Record<string, string> }).checks['token:fabrikam']).toMatch(/AADSTS7000215/);
    const own = await fetch(`http://127.0.0.1:${port}/readyz?account=fabrikam`);
    expect(own.status).toBe(503);
    expect(((await own.json()) as { reason: string }).reason).toMatch(/^no Graph token: .*AADSTS7000215/);
    expect(await pySend(relay.smtpPort, 'printer@contoso.example', ['someone@example.org'], mail('printer@contoso.example', 'fine'))).toMatchObject({ ok: true });
    expect(await pySend(relay.smtpPort, 'scanner@fabrikam.example', ['someone@example.org'], mail('scanner@fabrikam.example', 'waits'))).toMatchObject({ ok: true });
    expect(await relay.waitForLog((l) => l.event === 'deferred')).toMatchObject({ account: 'fabrikam', reason: 'token-unavailable' });
    await bed.emu.waitForSent(1);
    expect(bed.emu.sent.map((s) => s.upn)).toEqual(['printer@contoso.example']);
  });
});

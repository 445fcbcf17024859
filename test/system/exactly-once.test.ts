/**
 * Issue 19, exactly once: requests Graph took but never answered (a reset, a timeout, a 5xx after the fact)
 * are looked up in the mailbox's Sent Items before anything is sent again; and where no look-up can tell,
 * the relay is at-least-once and says so. The crash case is in delivery-engine.test.ts ("crash safety").
 */

import { randomBytes } from 'node:crypto';
import nodemailer from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { message, useTestbed } from '../helpers/graph-relay.js';
import { composeToFile, sendFile } from '../helpers/large-mail.js';
import type { LogLine, RelayProcess } from '../helpers/relay-process.js';
import { pySend } from '../helpers/smtp-clients.js';

// Every copy shows in Sent Items 200 ms after Graph took the message; the relay looks 4 times, 300 ms apart.
const tb = useTestbed({ sentItemsDelayMs: 200 });
const relay = (extra: Record<string, unknown> = {}): Promise<RelayProcess> => tb.relay({ delivery: { unknownOutcome: { lookups: 4, interval: '300ms' } }, ...extra });

const MAILBOXES = ['e1@contoso.example', 'e2@contoso.example', 'e3@contoso.example', 'e4@contoso.example', 'e5@contoso.example'];

/** Sends n messages over 5 pooled sessions; all must be accepted. Returns their Message-IDs. */
async function sendMany(port: number, n: number, tag: string): Promise<string[]> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, pool: true, maxConnections: 5, maxMessages: Infinity, ignoreTLS: true });
  try {
    return await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const messageId = `<${tag}-${i}@test.example>`;
        const info = await transport.sendMail({ from: MAILBOXES[i % MAILBOXES.length], to: 'rcpt@contoso.example', subject: `${tag} ${i}`, text: `message ${i}\n`, messageId });
        if (!/^250 /.test(info.response)) throw new Error(info.response);
        return messageId;
      }),
    );
  } finally {
    transport.close();
  }
}

const sentIds = (): string[] => tb.emu.sent.map((s) => s.internetMessageId);

/** Waits until every message has its one `delivered` line, then checks that Graph has each exactly once. */
async function expectExactlyOnce(r: RelayProcess, ids: string[]): Promise<LogLine[]> {
  const delivered = await r.waitForLogs((l) => l.event === 'delivered', ids.length, 180_000);
  expect(sentIds().sort()).toEqual([...ids].sort());
  expect(new Set(delivered.map((l) => l.qid)).size).toBe(ids.length);
  expect(r.logs.filter((l) => l.event === 'possible-duplicate')).toEqual([]);
  return delivered;
}

describe('unknown outcomes are looked up in Sent Items before a resend', () => {
  it('5 % of submissions recorded by Graph and then reset: 500 messages, none lost, none twice', { timeout: 240_000 }, async () => {
    tb.emu.setFaults({ latencyMs: 20, acceptThenResetRate: 0.05 });
    const r = await relay();
    const ids = await sendMany(r.smtpPort, 500, 'reset');
    const delivered = await expectExactlyOnce(r, ids);
    const resets = tb.emu.requests.filter((q) => q.op === 'sendMail' && q.reset).length;
    const found = delivered.filter((l) => l.resolvedBy === 'sent-items').length;
    console.log(`reset test: ${ids.length} sent, ${resets} submission(s) recorded then reset, ${found} found in Sent Items`);
    expect(resets).toBeGreaterThan(5);
    // Each recorded-then-reset submission was found, not sent again.
    expect(found).toBe(resets);
    expect(tb.emu.requests.filter((q) => q.op === 'sendMail').length).toBe(ids.length);
  });

  it('5 % of submissions recorded by Graph and never answered (the headers timeout fires): 500 messages, none lost, none twice', { timeout: 240_000 }, async () => {
    tb.emu.setFaults({ latencyMs: 20, acceptThenHangRate: 0.05 });
    const r = await relay({ graph: { headersTimeout: '1s' } });
    const ids = await sendMany(r.smtpPort, 500, 'hang');
    const delivered = await expectExactlyOnce(r, ids);
    const unknown = r.logs.filter((l) => l.event === 'outcome-unknown');
    console.log(`timeout test: ${ids.length} sent, ${unknown.length} timed out after the whole request, ${delivered.filter((l) => l.resolvedBy === 'sent-items').length} found in Sent Items`);
    expect(unknown.length).toBeGreaterThan(5);
    expect(unknown.every((l) => l.code === 'UND_ERR_HEADERS_TIMEOUT')).toBe(true);
    expect(delivered.filter((l) => l.resolvedBy === 'sent-items').length).toBe(unknown.length);
  });

  it('a 5xx after Graph took the message is an unknown outcome too; a request Graph never got is found missing and sent again', async () => {
    const mb = MAILBOXES[0]!;
    tb.emu.script(mb, [{ op: 'sendMail', acceptThenStatus: 502 }, { op: 'sendMail', acceptThenStatus: 504 }, { op: 'sendMail', reset: true }]);
    const r = await relay();
    for (const s of ['five-oh-two', 'five-oh-four', 'lost-reset']) {
      expect((await pySend(r.smtpPort, mb, ['rcpt@contoso.example'], message({ From: mb, To: 'rcpt@contoso.example', Subject: s, 'Message-ID': `<${s}@test.example>` }, 'x\r\n'))).ok).toBe(true);
    }
    const delivered = await expectExactlyOnce(r, ['<five-oh-two@test.example>', '<five-oh-four@test.example>', '<lost-reset@test.example>']);
    expect(r.logs.filter((l) => l.event === 'outcome-unknown').map((l) => l.reason).sort()).toEqual(['http-502', 'http-504', expect.stringMatching(/^network-/)]);
    expect(delivered.filter((l) => l.resolvedBy === 'sent-items')).toHaveLength(2);
    // The reset one was not in Sent Items after 4 look-ups: sent again, once.
    expect(await r.waitForLog((l) => l.event === 'lookup-not-found')).toMatchObject({ lookups: 4 });
  });

  it('adds a Message-ID to a message without one, so its look-up has something to find', async () => {
    const mb = MAILBOXES[1]!;
    tb.emu.script(mb, [{ op: 'sendMail', acceptThenReset: true }]);
    const r = await relay();
    expect((await pySend(r.smtpPort, mb, ['rcpt@contoso.example'], message({ From: mb, To: 'rcpt@contoso.example', Subject: 'no id' }, 'x\r\n'))).ok).toBe(true);
    const received = await r.waitForLog((l) => l.event === 'received');
    expect(received).toMatchObject({ messageIdAdded: true, messageId: expect.stringMatching(new RegExp(`^<${received.qid}\\.\\d+@relay\\.test>$`)) });
    const delivered = await expectExactlyOnce(r, [String(received.messageId)]);
    expect(delivered[0]).toMatchObject({ resolvedBy: 'sent-items' });
    expect(tb.emu.sent[0]!.mime!.toString('latin1')).toContain(`\r\nMessage-ID: ${received.messageId}\r\n\r\nx\r\n`);
  });

  it('the large route: a JSON draft carries the Message-ID as internetMessageId, and a send of the draft that got no answer is found', { timeout: 60_000 }, async () => {
    const mb = MAILBOXES[2]!;
    tb.emu.script(mb, [{ op: 'sendDraft', acceptThenReset: true }]);
    const r = await relay();
    const b64 = randomBytes(5 * 1024 * 1024).toString('base64').replace(/.{76}/g, '$&\r\n');
    const raw = `From: ${mb}\r\nTo: rcpt@contoso.example\r\nSubject: scan\r\nMessage-ID: <scan-1@test.example>\r\nMIME-Version: 1.0\r\nContent-Type: application/pdf; name="scan.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}\r\n`;
    await sendFile(r.smtpPort, mb, ['rcpt@contoso.example'], await composeToFile({ raw: Buffer.from(raw, 'latin1') }));
    const [delivered] = await expectExactlyOnce(r, ['<scan-1@test.example>']);
    expect(delivered).toMatchObject({ resolvedBy: 'sent-items', route: 'large', attempt: 1 });
    expect((tb.emu.sent[0]!.json as Record<string, unknown>)['internetMessageId']).toBe('<scan-1@test.example>');
    expect(tb.emu.drafts(mb)).toEqual([]); // the sent draft was left alone, not deleted
  });
});

describe('where no look-up can tell, at-least-once, and said so', () => {
  it('sentItems discard: JSON sendMail keeps no copy, so a reset submission goes again on the retry schedule, with a warning naming the message', async () => {
    const mb = MAILBOXES[3]!;
    tb.emu.script(mb, [{ op: 'sendMail', acceptThenReset: true }]);
    const r = await relay({ delivery: { sentItems: 'discard', unknownOutcome: { lookups: 4, interval: '300ms' } } });
    expect((await pySend(r.smtpPort, mb, ['rcpt@contoso.example'], message({ From: mb, To: 'rcpt@contoso.example', Subject: 'discard', 'Message-ID': '<discard@test.example>' }, 'x\r\n'))).ok).toBe(true);
    const warning = await r.waitForLog((l) => l.event === 'possible-duplicate');
    const received = await r.waitForLog((l) => l.event === 'received');
    expect(warning).toMatchObject({ level: 'warn', qid: received.qid, why: 'no-sent-items-copy' });
    await r.waitForLog((l) => l.event === 'delivered');
    // Graph got it twice (JSON sendMail carries no Message-ID: Exchange made one up each time).
    expect(tb.emu.sent.map((x) => ((x.json as { message: { subject: string } }).message.subject))).toEqual(['discard', 'discard']);
    expect(tb.emu.sent.every((x) => !x.savedToSentItems)).toBe(true);
    expect(tb.emu.requests.filter((q) => q.op === 'listSentItems')).toEqual([]);
  });

  it('a token without a read role: a warning at start, and an unknown outcome goes again at its first look-up, asking Graph nothing', async () => {
    tb.emu.setRoles(['Mail.Send']);
    const mb = MAILBOXES[4]!;
    tb.emu.script(mb, [{ op: 'sendMail', acceptThenReset: true }]);
    const r = await relay();
    expect(await r.waitForLog((l) => l.event === 'sent-items-lookup-unavailable')).toMatchObject({ level: 'warn', need: 'Mail.ReadBasic.All' });
    expect((await pySend(r.smtpPort, mb, ['rcpt@contoso.example'], message({ From: mb, To: 'rcpt@contoso.example', Subject: 'no role', 'Message-ID': '<no-role@test.example>' }, 'x\r\n'))).ok).toBe(true);
    expect(await r.waitForLog((l) => l.event === 'possible-duplicate')).toMatchObject({ why: 'no-role' });
    await r.waitForLog((l) => l.event === 'delivered');
    expect(sentIds()).toEqual(['<no-role@test.example>', '<no-role@test.example>']);
    expect(r.logs.filter((l) => l.event === 'sent-items-lookup-unavailable')).toHaveLength(1);
    expect(tb.emu.requests.filter((q) => q.op === 'listSentItems')).toEqual([]);
  });

  it('a look-up Graph refuses with 403 (no roles in the token: RBAC for Applications without read): sent again, at-least-once', async () => {
    tb.emu.setRoles([]);
    const mb = MAILBOXES[0]!;
    tb.emu.script(mb, [{ op: 'sendMail', acceptThenReset: true }, { op: 'listSentItems', status: 403 }]);
    const r = await relay();
    expect((await pySend(r.smtpPort, mb, ['rcpt@contoso.example'], message({ From: mb, To: 'rcpt@contoso.example', Subject: '403', 'Message-ID': '<forbidden@test.example>' }, 'x\r\n'))).ok).toBe(true);
    expect(await r.waitForLog((l) => l.event === 'possible-duplicate')).toMatchObject({ why: 'forbidden', status: 403, code: 'ErrorAccessDenied' });
    await r.waitForLog((l) => l.event === 'delivered');
    expect(sentIds()).toEqual(['<forbidden@test.example>', '<forbidden@test.example>']);
    expect(r.logs.some((l) => l.event === 'sent-items-lookup-unavailable')).toBe(false);
  });
});

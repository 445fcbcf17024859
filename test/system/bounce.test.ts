/** Bounces: a delivery status notification (RFC 3464) to the sender, through Graph, from the postmaster mailbox. */

import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { message, useTestbed } from '../helpers/graph-relay.js';
import type { RelayProcess } from '../helpers/relay-process.js';
import { pySend } from '../helpers/smtp-clients.js';

const tb = useTestbed({}, { bounces: { postmaster: 'postmaster@contoso.example' } });

const relay = tb.relay.bind(tb);

/** Splits a multipart/report into its parts by boundary, without interpretation. */
function reportParts(mime: string): string[] {
  const boundary = /boundary="([^"]+)"/.exec(mime)![1]!;
  return mime.split(`--${boundary}`).slice(1, -1);
}

describe('bounces', () => {
  it('returns a permanently failed message to its sender, field by field', async () => {
    const r = await relay();
    tb.emu.script('alice@contoso.example', [{ status: 400, code: 'ErrorInvalidRecipients', message: 'At least one recipient is not valid.' }]);
    const original = message({ From: 'alice@contoso.example', To: 'nobody@contoso.example', Subject: 'Invoice 42', 'Message-ID': '<inv42@contoso.example>' }, 'body text that must not be in the bounce\r\n');
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['nobody@contoso.example'], original)).ok).toBe(true);
    const bounced = await r.waitForLog((l) => l.event === 'bounced');
    const [dsnSent] = await tb.emu.waitForSent(1);
    expect(dsnSent!.upn).toBe('postmaster@contoso.example');
    expect(dsnSent!.recipients).toEqual(['alice@contoso.example']);
    const mime = dsnSent!.mime!.toString('utf8');
    const parsed = await simpleParser(dsnSent!.mime!);
    expect(parsed.from?.value[0]?.address).toBe('postmaster@contoso.example');
    expect(parsed.subject).toBe('Undelivered Mail Returned to Sender');
    expect(parsed.headers.get('auto-submitted')).toBe('auto-replied');
    expect(mime).toMatch(/Content-Type: multipart\/report; report-type=delivery-status;/);
    const [human, status, headers] = reportParts(mime);
    expect(human).toContain('Content-Type: text/plain');
    expect(human).toContain('<nobody@contoso.example>: HTTP 400 ErrorInvalidRecipients At least one recipient is not valid.');
    expect(status).toContain('Content-Type: message/delivery-status');
    expect(status).toMatch(/Reporting-MTA: dns; relay\.test\r\n/);
    expect(status).toContain(`X-Relay-Queue-ID: ${bounced.qid}`);
    expect(status).toMatch(/Arrival-Date: \w{3}, \d+ \w{3} \d{4} [\d:]{8} \+0000/);
    expect(status).toContain('Final-Recipient: rfc822; nobody@contoso.example');
    expect(status).toContain('Action: failed');
    expect(status).toContain('Status: 5.1.1');
    expect(status).toContain('Diagnostic-Code: X-Graph; HTTP 400 ErrorInvalidRecipients');
    expect(headers).toContain('Content-Type: text/rfc822-headers');
    expect(headers).toContain('Subject: Invoice 42');
    expect(headers).toContain('Message-ID: <inv42@contoso.example>');
    expect(headers).toMatch(/Received: from pytest\.local/);
    expect(mime).not.toContain('body text that must not be in the bounce');
    // The original is gone (bounced), the DSN was delivered and left nothing behind.
    await r.waitForLog((l) => l.event === 'delivered' && l.qid === bounced.dsnQid);
    expect(readdirSync(path.join(r.spoolDir, 'queue'))).toEqual([]);
    expect(readdirSync(path.join(r.spoolDir, 'dead'))).toEqual([]);
  });

  it('never bounces a message from the null sender: it stays in the dead-letter folder', async () => {
    const r = await relay({ mailboxes: { map: { '<>': 'noreply@contoso.example' } } });
    tb.emu.script('*', [{ status: 403, code: 'ErrorSendAsDenied' }]);
    expect((await pySend(r.smtpPort, '', ['bob@contoso.example'], message({ Subject: 'auto' }, 'x\r\n'))).ok).toBe(true);
    const dead = await r.waitForLog((l) => l.event === 'dead-lettered');
    expect(dead).toMatchObject({ noBounce: 'null sender <>', level: 'error' });
    expect(existsSync(path.join(r.spoolDir, 'dead', `${dead.qid}.msg`))).toBe(true);
    expect(r.logs.filter((l) => l.event === 'bounced')).toEqual([]);
  });

  it('never bounces a bounce', async () => {
    const r = await relay();
    // The original fails, then its bounce fails too.
    tb.emu.script('*', [
      { status: 404, code: 'ErrorInvalidUser' },
      { status: 404, code: 'ErrorInvalidUser' },
    ]);
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: 'x' }, 'x\r\n'))).ok).toBe(true);
    const bounced = await r.waitForLog((l) => l.event === 'bounced');
    const dead = await r.waitForLog((l) => l.event === 'dead-lettered');
    expect(dead.qid).toBe(bounced.dsnQid);
    expect(dead.noBounce).toBe('a bounce is never bounced');
    expect(r.logs.filter((l) => l.event === 'bounced')).toHaveLength(1);
  });

  it('without a postmaster mailbox keeps the failed message in the dead-letter folder and logs an error', async () => {
    const r = await relay({ bounces: {} });
    tb.emu.script('*', [{ status: 403, code: 'ErrorAccessDenied' }]);
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: 'x' }, 'x\r\n'))).ok).toBe(true);
    const dead = await r.waitForLog((l) => l.event === 'dead-lettered');
    expect(dead).toMatchObject({ level: 'error', reason: 'access-denied', noBounce: 'bounces off' });
    expect(tb.emu.sent).toHaveLength(0);
  });

  it('expires a message after the maximum queue lifetime and bounces it with status 4.4.7', async () => {
    tb.emu.setDown('503');
    const r = await relay({ delivery: { retry: { schedule: ['300ms'], maxQueueLifetime: '2s', throttleBackoffBase: '300ms' } } });
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: 'late' }, 'x\r\n'))).ok).toBe(true);
    const bounced = await r.waitForLog((l) => l.event === 'bounced', 20_000);
    expect(bounced.reason).toBe('expired');
    tb.emu.setDown(false);
    const [dsn] = await tb.emu.waitForSent(1);
    const mime = dsn!.mime!.toString();
    expect(mime).toContain('Status: 4.4.7');
    expect(mime).toContain('Action: failed');
  });

  it('sends one delay notice when a message waits longer than delayWarningAfter', async () => {
    // Everything to alice's mailbox fails for a while; the notice goes out from the postmaster mailbox.
    tb.emu.script('alice@contoso.example', Array.from({ length: 30 }, () => ({ status: 500, code: 'InternalServerError' })));
    const cfg = { bounces: { postmaster: 'postmaster@contoso.example', delayWarningAfter: '1m' }, delivery: { retry: { schedule: ['100ms'] } } };
    const r1 = await relay(cfg);
    // delayWarningAfter has a floor of one minute, so a test cannot wait for it: backdate instead.
    expect((await pySend(r1.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: 'slow' }, 'x\r\n'))).ok).toBe(true);
    const rec = await r1.waitForLog((l) => l.event === 'received');
    await r1.waitForLog((l) => l.event === 'deferred');
    // With the relay stopped: a running one rewrites the state file at every deferral (every 100 ms here)
    // from the envelope it loaded, and would undo an edit that lands during an attempt.
    expect(await r1.stop()).toBe(0);
    const { readFileSync, writeFileSync, renameSync } = await import('node:fs');
    const envPath = path.join(r1.spoolDir, 'queue', `${rec.qid}.json`);
    // Rewrite receivedAt as a queue tool would (atomically), two minutes in the past.
    const env = JSON.parse(readFileSync(envPath, 'utf8'));
    env.receivedAt = new Date(Date.now() - 120_000).toISOString();
    writeFileSync(`${envPath}.tmp`, JSON.stringify(env));
    renameSync(`${envPath}.tmp`, envPath);
    const r = await relay(cfg, { dir: r1.dir });
    const notice = await r.waitForLog((l) => l.event === 'delay-notice', 20_000);
    expect(notice.to).toBe('alice@contoso.example');
    const sent = await tb.emu.waitForSent(1);
    const dsn = sent.find((s) => s.upn === 'postmaster@contoso.example')!;
    expect(dsn.mime!.toString()).toContain('Action: delayed');
    expect(dsn.mime!.toString()).toContain('Subject: Delayed Mail (still being retried)');
    await r.waitForLogs((l) => l.event === 'deferred' && l.qid === rec.qid, 4);
    expect(r.logs.filter((l) => l.event === 'delay-notice')).toHaveLength(1);
  });
});

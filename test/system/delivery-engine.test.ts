/** The delivery engine under load and faults: limits per mailbox, throttling, crashes, shutdown, passthrough, queue tools. */

import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { message, useTestbed } from '../helpers/graph-relay.js';
import { CLI, type RelayProcess } from '../helpers/relay-process.js';
import { RawSmtp, pySend } from '../helpers/smtp-clients.js';

const tb = useTestbed();

const relay = tb.relay.bind(tb);

/** Sends `n` messages over a pool of SMTP sessions; returns the Message-IDs the relay acknowledged with 250. */
async function sendMany(port: number, n: number, mailboxes: string[], tag: string): Promise<{ accepted: string[]; failed: number; unacknowledged: string[] }> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, pool: true, maxConnections: 5, maxMessages: Infinity, ignoreTLS: true });
  const results = await Promise.allSettled(
    Array.from({ length: n }, (_, i) => {
      const from = mailboxes[i % mailboxes.length]!;
      const messageId = `<${tag}-${i}@test.example>`;
      return transport.sendMail({ from, to: 'rcpt@contoso.example', subject: `${tag} ${i}`, text: `message ${i}\n`, messageId }).then((info) => {
        if (!/^250 /.test(info.response)) throw new Error(info.response);
        return messageId;
      });
    }),
  );
  transport.close();
  return {
    accepted: results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])),
    failed: results.filter((r) => r.status === 'rejected').length,
    unacknowledged: results.flatMap((r, i) => (r.status === 'rejected' ? [`<${tag}-${i}@test.example>`] : [])),
  };
}

function messageIdOf(mime: Buffer): string {
  return /^Message-ID: (<[^>]+>)/im.exec(mime.toString('latin1'))![1]!;
}

const cli = promisify(execFile);
const queueTool = (r: RelayProcess, ...args: string[]) => cli(process.execPath, [CLI, 'queue', ...args, '--config', r.configPath], { env: { ...process.env, NODE_EXTRA_CA_CERTS: tb.emu.caCertPath } });

describe('scheduler against Graph limits and faults', () => {
  it('keeps every mailbox within 4 requests in flight and delivers everything under random 429/503/resets', async () => {
    tb.emu.setFaults({ latencyMs: 60, jitterMs: 30, randomFaultRate: 0.2, mailboxConcurrency: 4 });
    const r = await relay({ delivery: { globalConcurrency: 32, retry: { schedule: ['100ms'], throttleBackoffBase: '100ms' } } });
    const mailboxes = ['a@contoso.example', 'b@contoso.example', 'c@contoso.example'];
    const { accepted } = await sendMany(r.smtpPort, 90, mailboxes, 'load');
    expect(accepted).toHaveLength(90);
    await r.waitForLogs((l) => l.event === 'delivered', 90, 120_000);
    // Never more than the limit in flight per mailbox: no request was ever refused for concurrency.
    const admitted = tb.emu.requests.filter((q) => q.op === 'sendMail');
    expect(Math.max(...admitted.map((q) => q.inFlightAtStart))).toBeLessThanOrEqual(3);
    for (const mb of mailboxes) expect(tb.emu.stats().perMailbox[mb]!.maxInFlight).toBeLessThanOrEqual(4);
    // Every accepted message arrived, once: a reset after the body is looked up in Sent Items before the resend.
    const got = tb.emu.sent.map((s) => messageIdOf(s.mime!));
    expect(got.sort()).toEqual([...accepted].sort());
    expect(r.logs.some((l) => l.event === 'deferred')).toBe(true);
    expect(r.logs.some((l) => l.event === 'outcome-unknown')).toBe(true);
    expect(r.logs.filter((l) => l.event === 'possible-duplicate')).toEqual([]);
  });

  it('pauses only the throttled mailbox: the others deliver while it waits for Retry-After', async () => {
    tb.emu.script('slow@contoso.example', [{ status: 429, code: 'ApplicationThrottled', retryAfter: 5 }]);
    const r = await relay();
    expect((await pySend(r.smtpPort, 'slow@contoso.example', ['x@contoso.example'], message({ Subject: 'slow' }, 'x\r\n'))).ok).toBe(true);
    const paused = await r.waitForLog((l) => l.event === 'mailbox-paused');
    expect(paused).toMatchObject({ mailbox: 'slow@contoso.example', pauseMs: 5000, reason: 'retry-after' });
    const { accepted } = await sendMany(r.smtpPort, 12, ['fast@contoso.example', 'slow@contoso.example'], 'mix');
    expect(accepted).toHaveLength(12);
    const slowDelivered = await r.waitForLogs((l) => l.event === 'delivered' && l.mailbox === 'slow@contoso.example', 7, 30_000);
    const fastDelivered = r.logs.filter((l) => l.event === 'delivered' && l.mailbox === 'fast@contoso.example');
    expect(fastDelivered).toHaveLength(6);
    // Every fast message was delivered before the slow mailbox's pause ended and its first message went out.
    const firstSlow = r.logs.indexOf(slowDelivered[0]!);
    for (const f of fastDelivered) expect(r.logs.indexOf(f)).toBeLessThan(firstSlow);
    // And the slow mailbox sent nothing while paused.
    const slowRequests = tb.emu.requests.filter((q) => q.upn === 'slow@contoso.example');
    expect(slowRequests[1]!.at.getTime() - slowRequests[0]!.at.getTime()).toBeGreaterThanOrEqual(4990);
  });

  it('looks a timed-out request up in Sent Items and does not send it again when Graph had taken it', async () => {
    tb.emu.script('*', [{ delayMs: 4000 }]);
    // Graph answers after 4 s; the relay gives up after 1 s, then looks for the message every 500 ms for up to 6 s.
    const r = await relay({ graph: { headersTimeout: '1s' }, delivery: { unknownOutcome: { lookups: 12, interval: '500ms' } } });
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: 'dup', 'Message-ID': '<dup@test.example>' }, 'x\r\n'))).ok).toBe(true);
    const unknown = await r.waitForLog((l) => l.event === 'outcome-unknown');
    expect(unknown).toMatchObject({ level: 'warn', code: 'UND_ERR_HEADERS_TIMEOUT', lookupInMs: 500 });
    const done = await r.waitForLog((l) => l.event === 'delivered');
    expect(done).toMatchObject({ qid: unknown.qid, resolvedBy: 'sent-items', attempt: 1 });
    expect(tb.emu.sent.map((s) => messageIdOf(s.mime!))).toEqual(['<dup@test.example>']);
    expect(tb.emu.requests.filter((q) => q.op === 'sendMail')).toHaveLength(1);
  });
});

describe('crash safety', () => {
  it('loses nothing and sends nothing twice when killed with SIGKILL in the middle of a loaded run', async () => {
    // Graph goes on with the requests the kill cut off; their copies show in Sent Items 300 ms after.
    tb.emu.setFaults({ latencyMs: 400, jitterMs: 100, sentItemsDelayMs: 300 });
    const lookups = { delivery: { unknownOutcome: { lookups: 4, interval: '500ms' } } };
    const r1 = await relay(lookups, { process: true }); // a real SIGKILL
    const mailboxes = ['k1@contoso.example', 'k2@contoso.example', 'k3@contoso.example'];
    const sending = sendMany(r1.smtpPort, 150, mailboxes, 'kill');
    await r1.waitForLogs((l) => l.event === 'delivered', 10, 60_000);
    const inFlightAtKill = tb.emu.stats();
    await r1.kill();
    const { accepted, failed, unacknowledged } = await sending;
    // Some sessions were cut by the kill; only what got a 250 is the relay's to deliver.
    expect(accepted.length + failed).toBe(150);
    expect(accepted.length).toBeGreaterThan(10);
    const inFlight = Object.values(inFlightAtKill.perMailbox).reduce((n, m) => n + m.inFlight, 0);
    const r2 = await relay(lookups, { dir: r1.dir, process: true });
    await r2.waitForLog((l) => l.event === 'started');
    const want = new Set(accepted);
    const sentIds = () => tb.emu.sent.map((s) => messageIdOf(s.mime!));
    await new Promise<void>((resolve, reject) => {
      // Cleared once all arrived: left running, it would read a later test's records (some without a Message-ID).
      const timer = setTimeout(() => {
        tb.emu.off('sent', check);
        reject(new Error(`still missing: ${[...want].filter((id) => !sentIds().includes(id)).length}`));
      }, 60_000);
      const check = (): void => {
        if ([...want].every((id) => sentIds().includes(id))) {
          tb.emu.off('sent', check);
          clearTimeout(timer);
          resolve();
        }
      };
      tb.emu.on('sent', check);
      check();
    });
    await r2.waitForLog((l) => l.event === 'delivered');
    // Every message the kill left in flight is resolved: found in Sent Items, or sent after the wait.
    const recovered = r2.logs.filter((l) => l.event === 'outcome-unknown' && l.reason === 'crash').map((l) => l.qid);
    await r2.waitForLogs((l) => recovered.includes(l.qid) && l.event === 'delivered', recovered.length);
    const got = sentIds();
    const duplicates = got.length - new Set(got).size;
    console.log(`crash test: ${accepted.length} accepted, ${got.length} sent, ${duplicates} duplicate(s), ${inFlight} request(s) in flight at the kill, ${recovered.length} attempt(s) recovered from the journal`);
    expect(duplicates).toBe(0);
    expect(recovered.length).toBeGreaterThan(0);
    expect(r2.logs.filter((l) => l.event === 'delivered' && l.resolvedBy === 'sent-items').length).toBeGreaterThan(0);
    expect(r2.logs.filter((l) => l.event === 'possible-duplicate')).toEqual([]);
    // Beyond the accepted ones, only messages whose 250 the kill cut off may arrive: the relay had
    // committed them (so it owns them) but the client never heard so, as RFC 5321 section 6.1 allows.
    const maybe = new Set(unacknowledged);
    for (const id of got) expect(want.has(id) || maybe.has(id)).toBe(true);
  });
});

describe('graceful shutdown', () => {
  it('on SIGTERM answers new sessions with 421, finishes the Graph request in flight, and exits 0', async () => {
    tb.emu.setFaults({ latencyMs: 2500 });
    const r = await relay({}, { process: true }); // a real SIGTERM and exit code
    // Listening first: the token is at hand from the start, so the request may be admitted before pySend returns.
    const admitted = new Promise<void>((resolve) => tb.emu.once('admitted', () => resolve()));
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: 'in flight' }, 'x\r\n'))).ok).toBe(true);
    await admitted;
    r.child.kill('SIGTERM');
    await r.waitForLog((l) => l.event === 'stopping');
    const c = await RawSmtp.connect(r.smtpPort);
    expect((await c.reply()).text).toMatch(/^421 4\.3\.2 Service shutting down/);
    c.close();
    expect(await r.exited).toBe(0);
    expect(r.logs.some((l) => l.event === 'delivered')).toBe(true);
    expect(r.logs.at(-1)).toMatchObject({ event: 'stopped', queued: 0 });
    expect(tb.emu.sent).toHaveLength(1);
  });

  it('leaves unfinished work in the spool when the grace period runs out', async () => {
    tb.emu.setFaults({ latencyMs: 8000 });
    const r = await relay({ shutdownGrace: '1s' }, { process: true });
    // Listening first: the token is at hand from the start, so the request may be admitted before pySend returns.
    const admitted = new Promise<void>((resolve) => tb.emu.once('admitted', () => resolve()));
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: 'slow' }, 'x\r\n'))).ok).toBe(true);
    await admitted;
    r.child.kill('SIGTERM');
    expect(await r.exited).toBe(0);
    expect(r.logs.some((l) => l.event === 'grace-expired')).toBe(true);
    expect(readdirSync(path.join(r.spoolDir, 'queue')).filter((f) => f.endsWith('.msg'))).toHaveLength(1);
  });
});

describe('passthrough listeners', () => {
  it('answers with Graph’s verdict: 202 → 250, transient → 451, permanent → 554 with the error code', async () => {
    const r = await relay({ listeners: [{ name: 'sidecar', host: '127.0.0.1', port: 0, passthrough: true }] });
    const send = (subject: string) => pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: subject }, 'x\r\n'));
    // Count only this test's messages: a slow request of an earlier test may still land in the emulator.
    const mine = () => tb.emu.sent.filter((m) => /^Subject: (ok|busy|denied)\r$/m.test(m.mime!.toString()));
    expect((await send('ok')).ok).toBe(true);
    expect(mine()).toHaveLength(1);
    tb.emu.script('*', [{ status: 503, code: 'ServiceUnavailable', retryAfter: 5 }]);
    expect(await send('busy')).toMatchObject({ ok: false, code: 451, message: expect.stringMatching(/^4\.7\.0 Graph did not take the message \(HTTP 503 ServiceUnavailable\); try again later/) });
    tb.emu.script('*', [{ status: 403, code: 'ErrorSendAsDenied' }]);
    expect(await send('denied')).toMatchObject({ ok: false, code: 554, message: expect.stringMatching(/^5\.7\.1 Graph refused the message \(HTTP 403 ErrorSendAsDenied\)/) });
    // Nothing was queued: the client owns retries.
    expect(readdirSync(path.join(r.spoolDir, 'queue'))).toEqual([]);
    expect(readdirSync(path.join(r.spoolDir, 'tmp'))).toEqual([]);
    expect(mine()).toHaveLength(1);
  });
});

describe('queue tools on a live relay', () => {
  it('lists, shows, retries, deletes and requeues while the relay runs', async () => {
    tb.emu.setDown('503');
    const r = await relay({ delivery: { retry: { schedule: ['1h'], throttleBackoffBase: '1h', throttleBackoffMax: '1h' } } });
    for (const s of ['one', 'two', 'three']) expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: s }, 'x\r\n'))).ok).toBe(true);
    const ids = (await r.waitForLogs((l) => l.event === 'received', 3)).map((l) => String(l.qid));
    await r.waitForLog((l) => l.event === 'mailbox-paused');

    const list = (await queueTool(r, 'list')).stdout;
    for (const id of ids) expect(list).toMatch(new RegExp(`^${id}\\s+queue\\s+\\d+s\\s+alice@contoso\\.example\\s+\\d+\\s+[01]\\s+(now|in \\S+)`, 'm'));
    expect(list).toContain('-- 3 queued, 0 dead');
    const json = JSON.parse((await queueTool(r, 'list', '--json')).stdout);
    expect(json.map((e: { id: string }) => e.id).sort()).toEqual([...ids].sort());

    const show = (await queueTool(r, 'show', ids[0]!)).stdout;
    expect(show).toContain('state: queue');
    expect(show).toContain('"mailbox": "alice@contoso.example"');
    expect(show).toContain('Subject: one');

    expect((await queueTool(r, 'delete', ids[2]!)).stdout).toContain('1 message(s) deleted');
    expect(readdirSync(path.join(r.spoolDir, 'queue')).some((f) => f.startsWith(ids[2]!))).toBe(false);

    tb.emu.setDown(false);
    expect((await queueTool(r, 'retry', '--mailbox', 'alice@contoso.example')).stdout).toContain('2 message(s) due now');
    await r.waitForLogs((l) => l.event === 'delivered', 2);
    expect(tb.emu.sent.map((s) => /Subject: (\w+)/.exec(s.mime!.toString())![1]).sort()).toEqual(['one', 'two']);

    // A message that failed for good comes back with requeue.
    tb.emu.script('*', [{ status: 403, code: 'ErrorAccessDenied' }]);
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: 'four' }, 'x\r\n'))).ok).toBe(true);
    const dead = await r.waitForLog((l) => l.event === 'dead-lettered');
    expect((await queueTool(r, 'list', '--dead')).stdout).toContain(`${dead.qid}`);
    expect((await queueTool(r, 'requeue', String(dead.qid))).stdout).toContain('1 message(s) back in the queue');
    await r.waitForLog((l) => l.event === 'delivered' && l.qid === dead.qid);
    expect((await queueTool(r, 'list', '--all')).stdout).toContain('-- 0 queued, 0 dead');
  });

  it('works on the spool directly when no relay runs', async () => {
    tb.emu.setDown('503');
    const r = await relay({ delivery: { retry: { schedule: ['1h'], throttleBackoffBase: '1h', throttleBackoffMax: '1h' } } });
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: 'offline' }, 'x\r\n'))).ok).toBe(true);
    const rec = await r.waitForLog((l) => l.event === 'deferred');
    await r.stop();
    expect((await queueTool(r, 'retry', '--all')).stdout).toContain('1 message(s) due now');
    expect((await queueTool(r, 'delete', String(rec.qid))).stdout).toContain('1 message(s) deleted');
    expect((await queueTool(r, 'list')).stdout).toContain('-- 0 queued, 0 dead');
  });
});

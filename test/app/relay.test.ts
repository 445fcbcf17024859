/** The relay built in-process with createRelay: a Sender of the test's own instead of Graph, a temporary spool, real SMTP clients. */

import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { afterEach, describe, expect, it } from 'vitest';
import { handleControl } from '../../src/app/control.js';
import { createRelay } from '../../src/app/create-relay.js';
import type { Relay } from '../../src/app/relay.js';
import { buildConfig } from '../../src/config/load.js';
import type { Sender, SendResult } from '../../src/delivery/senders.js';
import type { MessageData } from '../../src/mime/message-file.js';
import { createLogger } from '../../src/observability/logger.js';
import type { Envelope } from '../../src/spool/envelope.js';
import { RawSmtp } from '../helpers/smtp-clients.js';

/** A Sender that records what it was given and answers what the test says. */
class RecordingSender implements Sender {
  readonly sent: { env: Envelope; bytes: Buffer }[] = [];
  answers: SendResult[] = [];
  private waiters: { n: number; resolve: () => void }[] = [];

  async send(env: Envelope, data: MessageData): Promise<SendResult> {
    const { readFile } = await import('node:fs/promises');
    const bytes = (await readFile(data.file)).subarray(0, data.size);
    const answer = this.answers.shift() ?? { verdict: { kind: 'delivered' }, route: 'mime', status: 202, requestId: `req-${this.sent.length + 1}` };
    if (answer.verdict.kind === 'delivered') this.sent.push({ env, bytes });
    this.waiters = this.waiters.filter((w) => (this.sent.length >= w.n ? (w.resolve(), false) : true));
    return answer;
  }

  until(n: number): Promise<void> {
    return this.sent.length >= n ? Promise.resolve() : new Promise((resolve) => this.waiters.push({ n, resolve }));
  }
}

const relays: Relay[] = [];
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.stop(1000)));
});

async function startRelay(extra: Record<string, unknown> = {}): Promise<{ relay: Relay; sender: RecordingSender; port: number; spoolDir: string }> {
  const spoolDir = path.join(mkdtempSync(path.join(tmpdir(), 'relay-app-')), 'spool');
  const cfg = buildConfig(
    { listeners: [{ port: 0 }], admin: { port: 0 }, spool: { directory: spoolDir }, mailboxes: { senderDomains: ['contoso.example'] }, delivery: { retry: { schedule: ['200ms'] } }, log: { flushInterval: '0s' }, ...extra },
    {},
    undefined,
    { requireCredentials: false },
  );
  const sender = new RecordingSender();
  const relay = createRelay(cfg, { log: createLogger('silent'), sender });
  relays.push(relay);
  await relay.start();
  const addr = relay.listeners[0]!.server.server.address();
  return { relay, sender, port: typeof addr === 'object' && addr ? addr.port : 0, spoolDir };
}

const send = (port: number, mail: Parameters<ReturnType<typeof nodemailer.createTransport>['sendMail']>[0]) => {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  return t.sendMail(mail).finally(() => t.close());
};

describe('a relay built with createRelay', () => {
  it('accepts over SMTP, delivers through the given Sender, and leaves the queue empty', async () => {
    const { sender, port, spoolDir, relay } = await startRelay();
    const info = await send(port, { from: 'alice@contoso.example', to: 'bob@contoso.example', bcc: 'carol@contoso.example', subject: 'hi', text: 'hello' });
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as \S+$/);
    await sender.until(1);
    const [m] = sender.sent;
    expect(m!.env).toMatchObject({ mailFrom: 'alice@contoso.example', rcptTo: ['bob@contoso.example', 'carol@contoso.example'], mailbox: 'alice@contoso.example', bcc: ['carol@contoso.example'] });
    expect(m!.bytes.toString()).toMatch(/^Received: from .* by relay|^Received: from /);
    await relay.scheduler.idle(); // the attempt records its outcome after the Sender returns
    expect(readdirSync(path.join(spoolDir, 'queue')).length).toBe(0);
  });

  it('greets at once (no early-talker pause by default); listeners[].greetingDelay brings the pause back', async () => {
    const talkFirst = async (listener: Record<string, unknown>): Promise<number[]> => {
      const { port } = await startRelay({ listeners: [{ port: 0, ...listener }] });
      const c = await RawSmtp.connect(port);
      c.socket.write('EHLO early.test\r\n'); // before reading the greeting
      const first = await c.reply();
      const codes = first.code === 220 ? [first.code, (await c.reply()).code] : [first.code];
      c.close();
      return codes;
    };
    expect(await talkFirst({})).toEqual([220, 250]);
    expect(await talkFirst({ greetingDelay: '1m' })).toEqual([421]);
  });

  it('retries a transient failure on the retry schedule, then delivers', async () => {
    const { sender, port, relay } = await startRelay();
    sender.answers.push({ verdict: { kind: 'transient', reason: 'http-503' }, route: 'mime', status: 503 });
    await send(port, { from: 'alice@contoso.example', to: 'bob@contoso.example', subject: 'again', text: 'x' });
    await sender.until(1);
    expect(sender.sent[0]!.env.attempts).toBe(2);
    await relay.scheduler.idle();
    expect(relay.scheduler.size()).toBe(0);
  });

  it('answers queue tools through the control handler: requeue from dead letters, delete, retry', async () => {
    const { sender, port, relay } = await startRelay();
    sender.answers.push({ verdict: { kind: 'permanent', reason: 'invalid-recipients' }, route: 'mime', status: 400, code: 'ErrorInvalidRecipients' });
    await send(port, { from: 'alice@contoso.example', to: 'nobody@contoso.example', subject: 'dead', text: 'x' });
    const deadline = Date.now() + 10_000;
    while ((await relay.spool.ids('dead')).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const [id] = await relay.spool.ids('dead');
    const deps = { spool: relay.spool, scheduler: relay.scheduler, active: relay.active, metrics: relay.metrics, log: createLogger('silent'), now: Date.now };
    expect(await handleControl(deps, { op: 'delete', ids: ['nope'] })).toMatchObject({ count: 0, skipped: { nope: 'not in queue' } });
    expect(await handleControl(deps, { op: 'requeue', ids: [id!] })).toMatchObject({ count: 1 });
    await sender.until(1);
    expect(sender.sent[0]!.env.id).toBe(id);
    expect(await handleControl(deps, { op: 'retry', all: true })).toMatchObject({ count: 0 });
  });

  it('a passthrough listener answers DATA with Graph verdict: 250, 451 for transient, 554 for permanent', async () => {
    const { sender, port } = await startRelay({ listeners: [{ port: 0, passthrough: true }] });
    const dataReply = async (): Promise<string> => {
      const c = await RawSmtp.connect(port);
      await c.reply();
      for (const cmd of ['EHLO t', 'MAIL FROM:<alice@contoso.example>', 'RCPT TO:<bob@contoso.example>', 'DATA']) await c.cmd(cmd);
      c.write('From: alice@contoso.example\r\nTo: bob@contoso.example\r\n\r\nx\r\n.\r\n');
      const r = await c.reply();
      c.close();
      return r.text;
    };
    expect(await dataReply()).toMatch(/^250 2\.0\.0 Ok: sent through Graph as \S+ \(request-id req-1\)$/);
    sender.answers.push({ verdict: { kind: 'transient', reason: 'throttled', throttle: { retryAfterMs: null } }, route: 'mime', status: 429 });
    expect(await dataReply()).toBe('451 4.7.0 Graph did not take the message (HTTP 429); try again later');
    sender.answers.push({ verdict: { kind: 'permanent', reason: 'send-as-denied' }, route: 'mime', status: 403, code: 'ErrorSendAsDenied' });
    expect(await dataReply()).toBe('554 5.7.1 Graph refused the message (HTTP 403 ErrorSendAsDenied)');
  });
});

/** Protocol limits and abuse: connection caps, messages per session, long lines, idle timeout, and a bounded fuzz run. */

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { mail } from '../helpers/front-door.js';
import { startInProcess } from '../helpers/relay-in-process.js';
import { startRelay, type RelayProcess } from '../helpers/relay-process.js';
import { RawSmtp, pySend } from '../helpers/smtp-clients.js';

const relays: RelayProcess[] = [];
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.kill()));
});

/** In the test's process; `asProcess` for what needs the binary (its own memory, its exit code). */
async function relay(limits: Record<string, unknown>, asProcess = false): Promise<RelayProcess> {
  const start = asProcess ? startRelay : startInProcess;
  const r = await start({ config: { delivery: { mode: 'capture' }, admin: { enabled: false }, mailboxes: { fallback: 'noreply@contoso.example' }, limits } });
  relays.push(r);
  return r;
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]);
}

describe('limits', () => {
  it('caps connections per client address with 421 4.7.0; a QUIT frees the slot before its 221, a dropped connection when it closes', async () => {
    const r = await relay({ maxConnectionsPerClient: 2 });
    const a = await RawSmtp.connect(r.smtpPort);
    const b = await RawSmtp.connect(r.smtpPort);
    expect((await a.reply()).code).toBe(220);
    expect((await b.reply()).code).toBe(220);
    const c = await RawSmtp.connect(r.smtpPort);
    expect((await c.reply()).text).toMatch(/^421 4\.7\.0 Too many connections from \[127\.0\.0\.1\]: at most 2 \(limits\.maxConnectionsPerClient\)/);
    c.close();
    // A client that reconnects the moment it reads 221, before its old socket is closed: not refused.
    expect((await a.cmd('QUIT')).code).toBe(221);
    const d = await RawSmtp.connect(r.smtpPort);
    expect((await d.reply()).code).toBe(220);
    // A connection dropped without QUIT frees its slot once the relay sees the close.
    b.close();
    let e: RawSmtp | null = null;
    for (let i = 0; i < 50; i++) {
      e = await RawSmtp.connect(r.smtpPort);
      if ((await e.reply()).code === 220) break;
      e.close();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(e!.closed).toBe(false);
    // Both slots are taken again (d and e); QUIT counted once: a third is refused.
    const f = await RawSmtp.connect(r.smtpPort);
    expect((await f.reply()).code).toBe(421);
    for (const x of [a, d, e!, f]) x.close();
  });

  it('limits messages per session, command length and idle time', async () => {
    const r = await relay({ maxMessagesPerSession: 2, maxCommandLength: 1024, idleTimeout: '1s' });
    const c = await RawSmtp.connect(r.smtpPort);
    await c.reply();
    await c.cmd('EHLO limits.local');
    for (let i = 0; i < 2; i++) {
      expect((await c.cmd('MAIL FROM:<a@contoso.example>')).code).toBe(250);
      expect((await c.cmd('RSET')).code).toBe(250);
    }
    expect((await c.cmd('MAIL FROM:<a@contoso.example>')).text).toMatch(/^421 4\.7\.0 Too many messages in one session: at most 2 \(limits\.maxMessagesPerSession\)/);
    c.close();

    const long = await RawSmtp.connect(r.smtpPort);
    await long.reply();
    long.write(`EHLO ${'x'.repeat(5000)}\r\n`);
    expect((await long.reply()).code).toBe(421);
    long.close();

    const idle = await RawSmtp.connect(r.smtpPort);
    await idle.reply();
    // Nothing is sent: the idle timeout (1 s here, 5 min by default) closes the session with 421.
    expect((await idle.reply(20_000)).code).toBe(421);
    idle.close();
  });
});

describe('a client that goes away', () => {
  it('mid-DATA leaves nothing in the queue or in tmp/, and the relay serves the next client', async () => {
    const r = await relay({});
    const c = await RawSmtp.connect(r.smtpPort);
    await c.reply();
    await c.cmd('EHLO gone.local');
    await c.cmd('MAIL FROM:<a@contoso.example>');
    await c.cmd('RCPT TO:<b@contoso.example>');
    expect((await c.cmd('DATA')).code).toBe(354);
    c.write(`Subject: cut\r\n\r\n${'x'.repeat(300_000)}\r\n`); // more than one spool write's worth
    c.socket.destroy();
    await r.waitForLog((l) => l.event === 'client-gone');
    expect(readdirSync(path.join(r.spoolDir, 'queue'))).toEqual([]);
    expect(readdirSync(path.join(r.spoolDir, 'tmp'))).toEqual([]);
    expect((await pySend(r.smtpPort, 'a@contoso.example', ['b@contoso.example'], mail('a@contoso.example', 'b@contoso.example'))).ok).toBe(true);
    expect(await r.waitForLog((l) => l.event === 'received')).toMatchObject({ from: 'a@contoso.example' });
  });
});

describe('fuzz', () => {
  it('survives random and malformed input with bounded memory, and serves a normal session afterwards', async () => {
    const r = await relay({ maxConnectionsPerClient: 50, maxMessageSize: '1MB' }, true);
    const pid = r.child.pid!;
    let seed = 0x5eed;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pieces = [
      () => Buffer.from('EHLO fuzz\r\n'),
      () => Buffer.from('MAIL FROM:<a@contoso.example>\r\n'),
      () => Buffer.from('MAIL FROM:<<<>>> SIZE=-1 BODY=\r\n'),
      () => Buffer.from('RCPT TO:<b@contoso.example>\r\n'),
      () => Buffer.from(`RCPT TO:<${'x'.repeat(rand(3000))}@contoso.example>\r\n`),
      () => Buffer.from('DATA\r\n'),
      () => Buffer.from('Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n--b--\r\n--c\r\n'),
      () => Buffer.from('.\r\n'),
      () => Buffer.from('AUTH PLAIN !!!notbase64\r\n'),
      () => Buffer.from('STARTTLS\r\nBDAT 10 LAST\r\nGET / HTTP/1.1\r\n'),
      () => Buffer.from(`${'A'.repeat(100_000 + rand(100_000))}\r\n`),
      () => Buffer.from(Array.from({ length: 1 + rand(4096) }, () => rand(256))),
      () => Buffer.from('\r\n\r\n\n\n\r\r\0\0'),
      () => Buffer.from('RSET\r\nNOOP\r\nVRFY root\r\nEXPN all\r\nHELP\r\n'),
    ];
    const oneSession = (): Promise<void> =>
      new Promise((resolve) => {
        const s = net.connect(r.smtpPort, '127.0.0.1');
        s.on('error', () => undefined);
        s.on('close', () => resolve());
        s.on('data', () => undefined);
        s.once('connect', () => {
          const n = 1 + rand(12);
          for (let i = 0; i < n; i++) s.write(pieces[rand(pieces.length)]!());
          // End our side: the relay answers what it parsed and closes (or its 421 does).
          s.end();
          setTimeout(() => s.destroy(), 5000).unref();
        });
      });
    const start = rssKb(pid);
    for (let round = 0; round < 20; round++) await Promise.all(Array.from({ length: 10 }, oneSession));
    expect(r.child.exitCode).toBeNull();
    const end = rssKb(pid);
    // Generous: the point is that 200 abusive sessions do not leave megabytes per session behind.
    expect(end).toBeLessThan(Math.max(start * 3, start + 150_000));
    const res = await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], mail('alice@contoso.example', 'bob@contoso.example'));
    expect(res.ok).toBe(true);
  });
});

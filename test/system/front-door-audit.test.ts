/** The outside audit of the front door (issue 15): each finding as it was reported, against the real relay. */

import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/config/password-hash.js';
import { LineClient, makeCert, type CertPair } from '../helpers/front-door.js';
import { startInProcess } from '../helpers/relay-in-process.js';
import type { LogLine, RelayProcess } from '../helpers/relay-process.js';

const relays: RelayProcess[] = [];
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.kill()));
});

let cert: CertPair;
let hash: string;
const PASSWORD = 'correct horse battery staple';

beforeAll(async () => {
  cert = makeCert();
  hash = await hashPassword(PASSWORD);
});

async function relay(config: Record<string, unknown>): Promise<RelayProcess> {
  const r = await startInProcess({ config: { delivery: { mode: 'capture' }, admin: { enabled: false }, mailboxes: { fallback: 'noreply@contoso.example' }, ...config } });
  relays.push(r);
  return r;
}

const users = () => [{ username: 'scanner1', passwordHash: hash, allowedSenders: ['scanner@contoso.example'], allowedRecipientDomains: ['contoso.example'] }];
const authPlain = (password: string) => `AUTH PLAIN ${Buffer.from(`\0scanner1\0${password}`).toString('base64')}`;
const tlsFiles = (mode: string) => ({ mode, certFile: cert.certFile, keyFile: cert.keyFile });

async function greeted(port: number, ehlo = 'client.example'): Promise<LineClient> {
  const c = await LineClient.connect(port);
  expect((await c.reply()).code).toBe(220);
  expect((await c.cmd(`EHLO ${ehlo}`)).code).toBe(250);
  return c;
}

/** Resolves once `n` of the promises have settled. */
function settled(promises: Promise<unknown>[], n: number): Promise<void> {
  let done = 0;
  return new Promise((resolve) => {
    for (const p of promises) {
      void p.finally(() => {
        if (++done === n) resolve();
      });
    }
  });
}

/**
 * Log lines reach the test on their own pipe, maybe after the SMTP reply that followed them: a client
 * outside the marker listener's networks makes the relay write one more line, and once that one is in,
 * every line before it is too.
 */
async function logsSettled(r: RelayProcess): Promise<LogLine[]> {
  const before = r.logs.filter((l) => l.reason === 'network').length;
  const c = await LineClient.connect(r.ports.marker!);
  expect((await c.reply()).code).toBe(554);
  c.close();
  await r.waitForLogs((l) => l.reason === 'network', before + 1);
  return r.logs;
}
const marker = { name: 'marker', host: '127.0.0.1', port: 0, auth: 'none', allowedNetworks: ['10.0.0.0/8'] };

describe('1. AUTH is advertised only where it is taken', () => {
  it('a STARTTLS listener lists AUTH only after STARTTLS, answers an early AUTH with 538 5.7.11, and takes it afterwards', async () => {
    const r = await relay({ users: users(), listeners: [{ name: 'submission', host: '127.0.0.1', port: 0, auth: 'required', tls: tlsFiles('starttls') }] });
    const c = await LineClient.connect(r.smtpPort);
    await c.reply();
    const plain = await c.cmd('EHLO device.example');
    expect(plain.text).toMatch(/250[ -]STARTTLS/);
    expect(plain.text).not.toMatch(/AUTH/);
    // A device that sends AUTH anyway learns why, with the RFC 4954 reply and the setting that decides it.
    expect((await c.cmd(authPlain(PASSWORD))).text).toBe('538 5.7.11 Encryption required for requested authentication mechanism: issue STARTTLS first (listeners[0].allowInsecureAuth is off)');
    const s = await c.starttls(readFileSync(cert.certFile));
    expect((await s.cmd('EHLO device.example')).text).toMatch(/250[ -]AUTH PLAIN LOGIN\r?$/m);
    expect((await s.cmd(authPlain(PASSWORD))).code).toBe(235);
    s.close();
    expect(r.logs.some((l) => JSON.stringify(l).includes(PASSWORD))).toBe(false);
  });

  it('with allowInsecureAuth the plaintext EHLO lists AUTH (and AUTH is taken there); an implicit-TLS listener lists it at once', async () => {
    const r = await relay({
      users: users(),
      listeners: [
        { name: 'legacy', host: '127.0.0.1', port: 0, auth: 'required', allowInsecureAuth: true, tls: tlsFiles('starttls') },
        { name: 'smtps', host: '127.0.0.1', port: 0, auth: 'required', tls: tlsFiles('implicit') },
      ],
    });
    const legacy = await LineClient.connect(r.ports.legacy!);
    await legacy.reply();
    expect((await legacy.cmd('EHLO old.example')).text).toMatch(/250[ -]AUTH PLAIN LOGIN\r?$/m);
    expect((await legacy.cmd(authPlain(PASSWORD))).code).toBe(235);
    legacy.close();
    const tlsSocket = await new Promise<net.Socket>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: r.ports.smtps!, ca: readFileSync(cert.certFile), servername: 'localhost' }, () => resolve(s));
      s.once('error', reject);
    });
    const smtps = new LineClient(tlsSocket);
    await smtps.reply();
    expect((await smtps.cmd('EHLO new.example')).text).toMatch(/250[ -]AUTH PLAIN LOGIN\r?$/m);
    smtps.close();
  });
});

describe('2. failed logins are counted when they start', () => {
  it('eleven parallel wrong passwords get three checks (authFailuresBeforeLockout: 3), and the right one after them is refused', async () => {
    const r = await relay({
      users: users(),
      listeners: [{ name: 'legacy', host: '127.0.0.1', port: 0, allowInsecureAuth: true, allowedNetworks: [] }, marker],
      limits: { authFailuresBeforeLockout: 3, authLockout: '10m', authFailureDelay: 0 },
    });
    const clients = await Promise.all(Array.from({ length: 12 }, () => greeted(r.ports.legacy!)));
    const guesses = clients.slice(0, 11).map((c, i) => {
      c.write(`${authPlain(`wrong-${i}`)}\r\n`);
      return c.reply();
    });
    // Eight answers in: whatever they are, three attempts have started (or failed) before the right password.
    await settled(guesses, 8);
    const right = await clients[11]!.cmd(authPlain(PASSWORD));
    const answers = await Promise.all(guesses);
    expect(right.code).toBe(454);
    expect(right.text).toMatch(/^454 4\.7\.0 Too many failed (or unfinished )?logins from \[127\.0\.0\.1\]/);
    expect(answers.filter((a) => a.code === 535)).toHaveLength(2);
    expect(answers.filter((a) => a.code === 454)).toHaveLength(9);
    for (const c of clients) c.close();
    const logs = await logsSettled(r);
    // Only three passwords were ever checked: parallel guessing got what sequential guessing gets.
    expect(logs.filter((l) => l.event === 'auth-failed')).toHaveLength(3);
  });
});

describe('the device view sees what the front door sees', () => {
  it('an authenticated device is its AUTH user, with its TLS version; a failed login later shows on that user', async () => {
    const r = await relay({ users: users(), admin: { host: '127.0.0.1', port: 0 }, listeners: [{ name: 'submission', host: '127.0.0.1', port: 0, auth: 'required', tls: tlsFiles('starttls') }] });
    const admin = `http://127.0.0.1:${Number((await r.waitForLog((l) => l.event === 'admin-listening')).port)}`;
    const c = await greeted(r.smtpPort);
    const s = await c.starttls(readFileSync(cert.certFile));
    await s.cmd('EHLO device.example');
    expect((await s.cmd(authPlain(PASSWORD))).code).toBe(235);
    expect((await s.cmd('MAIL FROM:<scanner@contoso.example>')).code).toBe(250);
    expect((await s.cmd('RCPT TO:<alice@contoso.example>')).code).toBe(250);
    expect((await s.cmd('DATA')).code).toBe(354);
    expect((await s.cmd('From: scanner@contoso.example\r\nSubject: scan\r\n\r\nhello\r\n.')).code).toBe(250);
    s.close();
    // The password changed on the relay, not on the printer: its next login fails.
    const again = await greeted(r.smtpPort);
    const s2 = await again.starttls(readFileSync(cert.certFile));
    await s2.cmd('EHLO device.example');
    expect((await s2.cmd(authPlain('old password'))).code).toBe(535);
    s2.close();
    await r.waitForLog((l) => l.event === 'auth-failed');
    const { devices } = (await (await fetch(`${admin}/ui/api/devices`)).json()) as { devices: { id: string; tls: string | null; today: number; lastError: string | null; via: string | null }[] };
    const user = devices.find((d) => d.id === 'user:scanner1');
    expect(user).toMatchObject({ tls: 'TLSv1.3', today: 1, via: '127.0.0.1', lastError: 'auth: 535 5.7.8 Authentication credentials invalid (user scanner1)' });
    expect(devices.find((d) => d.id === 'address:127.0.0.1')?.lastError).toMatch(/^auth: /);
  });
});

describe('3. failed TLS handshakes do not flood the log', () => {
  it('five on each TLS mode make one short info line for the address (limits.clientErrorLogInterval), no error, and count in the metric', async () => {
    const r = await startInProcess({
      config: {
        delivery: { mode: 'capture' },
        mailboxes: { fallback: 'noreply@contoso.example' },
        listeners: [{ name: 'smtps', host: '127.0.0.1', port: 0, tls: tlsFiles('implicit') }, { name: 'submission', host: '127.0.0.1', port: 0, tls: tlsFiles('starttls') }, marker],
        limits: { clientErrorLogInterval: '1h' },
      },
    });
    relays.push(r);
    for (let i = 0; i < 5; i++) {
      // Plaintext on the TLS port: what a misconfigured device (or anyone) sends.
      const c = await LineClient.connect(r.ports.smtps!);
      c.write('EHLO plain.example\r\n');
      await c.closedByPeer();
      // Garbage instead of a ClientHello after STARTTLS.
      const s = await greeted(r.ports.submission!);
      expect((await s.cmd('STARTTLS')).code).toBe(220);
      s.write('EHLO still-plain.example\r\n');
      await s.closedByPeer();
    }
    const logs = await logsSettled(r);
    expect(logs.filter((l) => l.level === 'error')).toEqual([]);
    const lines = logs.filter((l) => l.event === 'tls-handshake-failed');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'info', client: '127.0.0.1', listener: 'smtps', reason: expect.stringMatching(/^[a-z0-9_]+$/) });
    expect(lines[0]).not.toHaveProperty('err');
    expect(String(lines[0]!.msg)).not.toMatch(/\n/);
    const port = Number((await r.waitForLog((l) => l.event === 'admin-listening')).port);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const count = (listener: string) =>
      metrics
        .split('\n')
        .filter((l) => l.startsWith(`relay_smtp_tls_handshake_failures_total{listener="${listener}",`))
        .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    expect({ smtps: count('smtps'), submission: count('submission') }).toEqual({ smtps: 5, submission: 5 });
  });
});

describe('4. command lines with CR, LF or NUL inside', () => {
  const vectors: [string, string][] = [
    ['bare CR before a parameter', 'MAIL FROM:<a@contoso.example>\rSIZE=100'],
    ['bare CR as the separator', 'MAIL FROM:<a@contoso.example>\r BODY=8BITMIME'],
    ['NUL in a parameter name', 'MAIL FROM:<a@contoso.example> X\0Y=1'],
    ['bare CR after the address', 'MAIL FROM:<a@contoso.example>\r'],
  ];

  it('refuses each with 501 5.5.2 and leaves no transaction behind; a line ended by a bare LF too (limits.bareLineEndings: reject)', async () => {
    const r = await relay({});
    const c = await greeted(r.smtpPort);
    for (const [name, line] of vectors) {
      const res = await c.cmd(line);
      expect(res.text, name).toMatch(/^501 5\.5\.2 Syntax error: (bare CR|NUL) at column \d+/);
      expect((await c.cmd('RCPT TO:<b@contoso.example>')).code, `${name}: no MAIL was taken`).toBe(503);
    }
    c.write('MAIL FROM:<a@contoso.example>\n');
    expect((await c.reply()).text).toBe('501 5.5.2 Syntax error: command line ended by a bare LF (lines end with CRLF, RFC 5321 section 2.3.8; limits.bareLineEndings: reject)');
    expect((await c.cmd('MAIL FROM:<a@contoso.example>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<b@contoso.example>\rNOTIFY=NEVER')).text).toMatch(/^501 5\.5\.2 Syntax error: bare CR/);
    expect((await c.cmd('NOOP\0')).text).toMatch(/^501 5\.5\.2 Syntax error: NUL at column 5/);
    expect((await c.cmd('RCPT TO:<b@contoso.example>')).code).toBe(250);
    expect((await c.cmd('DATA')).code).toBe(354);
    expect((await c.cmd('Subject: clean\r\n\r\nbody\r\n.')).code).toBe(250);
    c.close();
    const [rec] = await r.waitForLogs((l) => l.event === 'received', 1);
    expect(rec).toMatchObject({ rcpts: 1, from: 'a@contoso.example' });
    expect(r.logs.filter((l) => l.reason === 'command-syntax')).toHaveLength(vectors.length + 3);
  });

  it('with bareLineEndings: normalize a command ended by a bare LF is taken; CR and NUL inside are still refused', async () => {
    const r = await relay({ limits: { bareLineEndings: 'normalize' } });
    const c = await greeted(r.smtpPort);
    c.write('MAIL FROM:<a@contoso.example>\n');
    expect((await c.reply()).code).toBe(250);
    expect((await c.cmd('RCPT TO:<b@contoso.example>\rNOTIFY=NEVER')).code).toBe(501);
    c.close();
  });

  it('ends an AUTH exchange at a response line with a CR: the next line is a command again', async () => {
    const r = await relay({ users: users(), listeners: [{ name: 'legacy', host: '127.0.0.1', port: 0, allowInsecureAuth: true, allowedNetworks: [] }] });
    const c = await greeted(r.smtpPort);
    expect((await c.cmd('AUTH LOGIN')).code).toBe(334);
    expect((await c.cmd(`${Buffer.from('scanner1').toString('base64')}\r`)).code).toBe(501);
    expect((await c.cmd('NOOP')).code).toBe(250);
    c.close();
  });
});

describe('5. routing syntax in recipients', () => {
  it('ignores source routes (RFC 5321 section 4.1.1.3, appendix C), refuses "%" and "!" local parts, and checks the address Graph sees', async () => {
    const r = await relay({ policy: { allowedRecipientDomains: ['contoso.example'] } });
    const c = await greeted(r.smtpPort);
    expect((await c.cmd('MAIL FROM:<app@contoso.example>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<@hop.example:bob@contoso.example>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<@a.example,@b.example:carol@contoso.example>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<@relay.contoso.example:victim@evil.example>')).text).toBe('550 5.7.1 Recipient <victim@evil.example> is not allowed: domain evil.example is not in policy.allowedRecipientDomains');
    expect((await c.cmd('RCPT TO:<victim%evil.example@contoso.example>')).text).toBe(
      '550 5.7.1 Recipient <victim%evil.example@contoso.example> is not allowed: "%" in the local part routes mail onward through the relay (policy.allowPercentHack)',
    );
    expect((await c.cmd('RCPT TO:<evil.example!victim@contoso.example>')).text).toMatch(/^550 5\.7\.1 Recipient <evil\.example!victim@contoso\.example> is not allowed: "!" in the local part .*\(policy\.allowPercentHack\)$/);
    // Envelope recipients reach Graph in a Bcc: header: a local part that a header parser reads as more (or other) addresses is refused.
    expect((await c.cmd('RCPT TO:<ceo,bob@contoso.example>')).text).toBe('553 5.1.3 Recipient address <ceo,bob@contoso.example> is not a valid internet address');
    expect((await c.cmd('RCPT TO:<(bob@contoso.example>')).code).toBe(553);
    expect((await c.cmd('DATA')).code).toBe(354);
    expect((await c.cmd('From: app@contoso.example\r\nTo: bob@contoso.example\r\nCc: carol@contoso.example\r\nSubject: routes\r\n\r\nhi\r\n.')).code).toBe(250);
    // The same rule for an address only the header names: Graph would deliver to it too.
    expect((await c.cmd('MAIL FROM:<app@contoso.example>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@contoso.example>')).code).toBe(250);
    expect((await c.cmd('DATA')).code).toBe(354);
    const header = await c.cmd('From: app@contoso.example\r\nTo: bob@contoso.example, victim%evil.example@contoso.example\r\nSubject: routes\r\n\r\nhi\r\n.');
    expect(header.text).toMatch(/^550 5\.7\.1 Recipient <victim%evil\.example@contoso\.example> is not allowed: "%" .*\(policy\.allowPercentHack\).*To: header/);
    c.close();
    const [rec] = await r.waitForLogs((l) => l.event === 'received', 1);
    await r.waitForLog((l) => l.event === 'delivered' && l.qid === rec!.qid);
    const captured = JSON.parse(readFileSync(path.join(r.captureDir, `${String(rec!.qid)}.json`), 'utf8'));
    expect(captured.envelope.rcptTo).toEqual(['bob@contoso.example', 'carol@contoso.example']);
  });

  it('takes "%" and "!" local parts with policy.allowPercentHack: true', async () => {
    const r = await relay({ policy: { allowPercentHack: true, allowedRecipientDomains: ['contoso.example'] } });
    const c = await greeted(r.smtpPort);
    expect((await c.cmd('MAIL FROM:<app@contoso.example>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<user%inner.contoso.example@contoso.example>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<inner!user@contoso.example>')).code).toBe(250);
    c.close();
  });
});

describe('7. a PROXY header from a peer that is not a trusted proxy', () => {
  /** The header as a load balancer sends it: at once, before the greeting. */
  async function proxyLine(port: number): Promise<{ code: number; text: string }> {
    const c = await LineClient.connect(port);
    c.write('PROXY TCP4 203.0.113.9 127.0.0.1 40000 25\r\n');
    let res = await c.reply();
    // A slow machine may have greeted before the line arrived; the answer is the same.
    if (res.code === 220) res = await c.reply();
    await c.closedByPeer();
    return res;
  }

  it('is refused with 554 5.7.1 naming the setting, and the connection closed, before or after the greeting', async () => {
    const r = await relay({
      listeners: [
        { name: 'plain', host: '127.0.0.1', port: 0 },
        { name: 'lb', host: '127.0.0.1', port: 0, proxyProtocol: { trustedProxies: ['10.0.0.0/8'] } },
        marker,
      ],
    });
    expect((await proxyLine(r.ports.plain!)).text).toBe('554 5.7.1 PROXY header from [127.0.0.1] refused: listener "plain" does not read the PROXY protocol (listeners[0].proxyProtocol)');
    expect((await proxyLine(r.ports.lb!)).text).toBe('554 5.7.1 PROXY header from [127.0.0.1] refused: not in the trusted proxies of listener "lb" (listeners[1].proxyProtocol.trustedProxies)');
    const late = await greeted(r.ports.plain!);
    expect((await late.cmd('PROXY TCP4 203.0.113.9 127.0.0.1 40000 25')).code).toBe(554);
    await late.closedByPeer();
    const logs = await logsSettled(r);
    expect(logs.filter((l) => l.reason === 'proxy-untrusted')).toHaveLength(3);
  });
});

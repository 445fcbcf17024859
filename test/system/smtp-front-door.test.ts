/** The SMTP front door with real clients: TLS modes, AUTH, sender and recipient policy, no open relay, PROXY protocol. */

import { execFile } from 'node:child_process';
import { copyFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import nodemailer from 'nodemailer';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/config/password-hash.js';
import { curlSend, mail, makeCert, pyClient, type CertPair } from '../helpers/front-door.js';
import { startInProcess } from '../helpers/relay-in-process.js';
import { CLI, startRelay, type RelayProcess } from '../helpers/relay-process.js';
import { RawSmtp } from '../helpers/smtp-clients.js';

const relays: RelayProcess[] = [];
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.kill()));
});

let cert: CertPair;
let scannerHash: string;
const PASSWORD = 'correct horse battery staple';

beforeAll(async () => {
  cert = makeCert();
  scannerHash = await hashPassword(PASSWORD);
});

/** In the test's process; `asProcess` for what needs the binary (a signal, its exit code). */
async function relay(config: Record<string, unknown>, asProcess = false): Promise<RelayProcess> {
  const start = asProcess ? startRelay : startInProcess;
  const r = await start({ config: { delivery: { mode: 'capture' }, admin: { enabled: false }, mailboxes: { fallback: 'noreply@contoso.example' }, ...config } });
  relays.push(r);
  return r;
}

function users(): Record<string, unknown>[] {
  return [
    {
      username: 'scanner1',
      passwordHash: scannerHash,
      allowedSenders: ['scanner@contoso.example', '@scans.contoso.example'],
      mailbox: 'scans@contoso.example',
      allowedRecipientDomains: ['contoso.example'],
    },
  ];
}

/** The capture record of a delivered message. */
async function captured(r: RelayProcess, qid: string): Promise<{ mailbox: string; envelope: { mailFrom: string; rcptTo: string[] } }> {
  await r.waitForLog((l) => l.event === 'delivered' && l.qid === qid);
  return JSON.parse(readFileSync(path.join(r.captureDir, `${qid}.json`), 'utf8'));
}

const received = (r: RelayProcess) => r.logs.filter((l) => l.event === 'received');
/** The log line is written before the 250, but may reach the test after the reply does. */
const receivedN = (r: RelayProcess, n: number) => r.waitForLogs((l) => l.event === 'received', n);

describe('STARTTLS and AUTH', () => {
  const listeners = () => [{ name: 'submission', host: '127.0.0.1', port: 0, tls: { mode: 'starttls', certFile: cert.certFile, keyFile: cert.keyFile }, allowedNetworks: [] }];

  it('AUTH PLAIN and LOGIN after STARTTLS with smtplib; the forced mailbox reaches the envelope', async () => {
    const r = await relay({ listeners: listeners(), users: users() });
    for (const mech of ['PLAIN', 'LOGIN'] as const) {
      const res = await pyClient({ port: r.smtpPort, mode: 'starttls', cafile: cert.certFile, user: 'scanner1', password: PASSWORD, mech, from: 'scanner@contoso.example', to: ['bob@contoso.example'], message: mail('scanner@contoso.example', 'bob@contoso.example') });
      expect(res, JSON.stringify(res)).toMatchObject({ ok: true, tlsVersion: 'TLSv1.3' });
    }
    const got = await receivedN(r, 2);
    const rec = await captured(r, String(got[0]!.qid));
    expect(rec.mailbox).toBe('scans@contoso.example');
    expect(rec.envelope).toEqual({ mailFrom: 'scanner@contoso.example', rcptTo: ['bob@contoso.example'] });
    expect(r.logs.some((l) => JSON.stringify(l).includes(PASSWORD))).toBe(false);
  });

  it('refuses senders, header From and recipient domains the user may not use, naming the rule', async () => {
    const r = await relay({ listeners: listeners(), users: users() });
    const base = { port: r.smtpPort, mode: 'starttls' as const, cafile: cert.certFile, user: 'scanner1', password: PASSWORD };
    const sender = await pyClient({ ...base, from: 'ceo@contoso.example', to: ['bob@contoso.example'], message: mail('ceo@contoso.example', 'bob@contoso.example') });
    expect(sender).toMatchObject({ ok: false, code: 550, message: '5.7.1 Sender <ceo@contoso.example> is not allowed for user "scanner1" (users[0].allowedSenders)' });
    const from = await pyClient({ ...base, from: 'scanner@contoso.example', to: ['bob@contoso.example'], message: mail('"The CEO" <ceo@contoso.example>', 'bob@contoso.example') });
    expect(from).toMatchObject({ ok: false, code: 550 });
    expect(from.message).toBe('5.7.1 Header From <ceo@contoso.example> is not allowed for user "scanner1" (users[0].allowedSenders, policy.checkHeaderFrom)');
    const rcpt = await pyClient({ ...base, from: 'a@scans.contoso.example', to: ['someone@gmail.example'], message: mail('a@scans.contoso.example', 'someone@gmail.example') });
    expect(rcpt).toMatchObject({ ok: false, code: 550 });
    expect(rcpt.message).toBe('5.7.1 Recipient <someone@gmail.example> is not allowed for user "scanner1": domain gmail.example is not in users[0].allowedRecipientDomains');
    expect(received(r)).toHaveLength(0);
  });

  it('requires AUTH from clients outside allowedNetworks, and TLS before AUTH', async () => {
    const r = await relay({ listeners: listeners(), users: users() });
    const anon = await pyClient({ port: r.smtpPort, mode: 'starttls', cafile: cert.certFile, from: 'scanner@contoso.example', to: ['bob@contoso.example'], message: mail('scanner@contoso.example', 'bob@contoso.example') });
    expect(anon).toMatchObject({ ok: false, code: 530 });
    expect(anon.message).toMatch(/^5\.7\.0 Authentication required: client host \[127\.0\.0\.1\] is not in allowedNetworks of listener "submission"/);
    const raw = await RawSmtp.connect(r.smtpPort);
    await raw.reply();
    expect((await raw.cmd('EHLO raw.local')).text).toMatch(/STARTTLS/);
    const auth = await raw.cmd(`AUTH PLAIN ${Buffer.from(`\0scanner1\0${PASSWORD}`).toString('base64')}`);
    expect(auth.code).toBe(538);
    raw.close();
  });

  it('slows down and locks out a client address after repeated failures', async () => {
    const r = await relay({ listeners: listeners(), users: users(), limits: { authFailuresBeforeLockout: 3, authLockout: '10m', authFailureDelay: '10ms' } });
    const attempt = (password: string) => pyClient({ port: r.smtpPort, mode: 'starttls', cafile: cert.certFile, user: 'scanner1', password });
    expect(await attempt('wrong-1')).toMatchObject({ ok: false, code: 535, message: '5.7.8 Authentication credentials invalid' });
    expect(await attempt('wrong-2')).toMatchObject({ ok: false, code: 535 });
    const third = await attempt('wrong-3');
    expect(third).toMatchObject({ ok: false, code: 454 });
    expect(third.message).toMatch(/^4\.7\.0 Too many failed logins from \[127\.0\.0\.1\]/);
    // Locked out even with the right password.
    expect(await attempt(PASSWORD)).toMatchObject({ ok: false, code: 454 });
    expect(r.logs.filter((l) => l.event === 'auth-failed')).toHaveLength(3);
  });

  it('refuses MAIL before STARTTLS on a requireTls listener', async () => {
    const r = await relay({ listeners: [{ name: 'lan', host: '127.0.0.1', port: 0, tls: { mode: 'starttls', certFile: cert.certFile, keyFile: cert.keyFile }, requireTls: true }] });
    const plain = await pyClient({ port: r.smtpPort, mode: 'plain', from: 'a@contoso.example', to: ['b@contoso.example'], message: mail('a@contoso.example', 'b@contoso.example') });
    expect(plain).toMatchObject({ ok: false, code: 530 });
    expect(plain.message).toMatch(/^5\.7\.0 Must issue a STARTTLS command first/);
    const tlsRes = await pyClient({ port: r.smtpPort, mode: 'starttls', cafile: cert.certFile, from: 'a@contoso.example', to: ['b@contoso.example'], message: mail('a@contoso.example', 'b@contoso.example') });
    expect(tlsRes.ok).toBe(true);
  });

  it('does not offer AUTH without TLS unless allowInsecureAuth is set', async () => {
    const closed = await relay({ users: users(), listeners: [{ name: 'plain', host: '127.0.0.1', port: 0, allowedNetworks: [] }] });
    const refused = await pyClient({ port: closed.smtpPort, mode: 'plain', user: 'scanner1', password: PASSWORD });
    // AUTH is not advertised and not recognized: smtplib sends it anyway and gets 500.
    expect(refused).toMatchObject({ ok: false, code: 500 });
    const legacy = await relay({ users: users(), listeners: [{ name: 'legacy', host: '127.0.0.1', port: 0, allowedNetworks: [], allowInsecureAuth: true }] });
    const ok = await pyClient({ port: legacy.smtpPort, mode: 'plain', user: 'scanner1', password: PASSWORD, mech: 'LOGIN', from: 'scanner@contoso.example', to: ['bob@contoso.example'], message: mail('scanner@contoso.example', 'bob@contoso.example') });
    expect(ok.ok).toBe(true);
  });
});

describe('pipelining (RFC 2920)', () => {
  /** Everything the relay writes on a plain socket, chunk by chunk as read, until `until` matches the whole. */
  function reads(socket: net.Socket, until: RegExp): Promise<string[]> {
    const chunks: string[] = [];
    return new Promise((resolve) => {
      const onData = (d: Buffer): void => {
        chunks.push(d.toString('latin1'));
        if (until.test(chunks.join(''))) {
          socket.off('data', onData);
          resolve(chunks);
        }
      };
      socket.on('data', onData);
    });
  }

  it('answers a pipelined MAIL, RCPT and DATA in one write', async () => {
    const r = await relay({});
    const socket = net.connect(r.smtpPort, '127.0.0.1');
    await reads(socket, /^220 .*\r\n$/);
    socket.write('EHLO pipeline.local\r\n');
    await reads(socket, /\r\n250 [^\r\n]*\r\n$/);
    const replies = reads(socket, /354 [^\r\n]*\r\n$/);
    socket.write('MAIL FROM:<app@contoso.example>\r\nRCPT TO:<bob@contoso.example>\r\nDATA\r\n');
    const got = await replies;
    expect(got.join('')).toMatch(/^250 2\.1\.0 [^\r\n]*\r\n250 2\.1\.5 [^\r\n]*\r\n354 [^\r\n]*\r\n$/);
    expect(got).toHaveLength(1);
    socket.write('Subject: p\r\n\r\nx\r\n.\r\n');
    expect((await reads(socket, /\r\n$/)).join('')).toMatch(/^250 2\.0\.0 Ok: queued as /);
    socket.destroy();
  });

  it('keeps STARTTLS working when a client pipelines it after EHLO', async () => {
    const r = await relay({ listeners: [{ name: 'submission', host: '127.0.0.1', port: 0, tls: { mode: 'starttls', certFile: cert.certFile, keyFile: cert.keyFile } }] });
    const socket = net.connect(r.smtpPort, '127.0.0.1');
    await reads(socket, /^220 .*\r\n$/);
    const plain = reads(socket, /\r\n220 [^\r\n]*\r\n$/);
    socket.write('EHLO pipeline.local\r\nSTARTTLS\r\n');
    expect((await plain).join('')).toMatch(/250[ -]STARTTLS\r\n[\s\S]*220 [^\r\n]*\r\n$/);
    const secure = tls.connect({ socket, ca: readFileSync(cert.certFile), servername: 'localhost' });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    secure.write('EHLO pipeline.local\r\n');
    const ehlo = await new Promise<string>((resolve) => secure.once('data', (d: Buffer) => resolve(d.toString())));
    expect(ehlo).toMatch(/^250[ -]/);
    secure.destroy();
  });
});

describe('implicit TLS and other clients', () => {
  it('serves smtplib SMTP_SSL, curl smtps:// and smtp:// --ssl-reqd, and nodemailer', async () => {
    const r = await relay({
      users: users(),
      listeners: [
        { name: 'smtps', host: '127.0.0.1', port: 0, tls: { mode: 'implicit', certFile: cert.certFile, keyFile: cert.keyFile }, allowedNetworks: [] },
        { name: 'starttls', host: '127.0.0.1', port: 0, tls: { mode: 'starttls', certFile: cert.certFile, keyFile: cert.keyFile }, allowedNetworks: [] },
      ],
    });
    const msg = mail('scanner@contoso.example', 'bob@contoso.example');
    const py = await pyClient({ port: r.ports.smtps!, mode: 'ssl', cafile: cert.certFile, user: 'scanner1', password: PASSWORD, from: 'scanner@contoso.example', to: ['bob@contoso.example'], message: msg });
    expect(py, JSON.stringify(py)).toMatchObject({ ok: true });
    const creds = ['--user', `scanner1:${PASSWORD}`, '--cacert', cert.certFile];
    const smtps = await curlSend(`smtps://127.0.0.1:${r.ports.smtps}`, creds, 'scanner@contoso.example', 'bob@contoso.example', msg);
    expect(smtps, smtps.stderr).toMatchObject({ code: 0 });
    const starttls = await curlSend(`smtp://127.0.0.1:${r.ports.starttls}`, ['--ssl-reqd', ...creds], 'scanner@contoso.example', 'bob@contoso.example', msg);
    expect(starttls, starttls.stderr).toMatchObject({ code: 0 });
    const wrong = await curlSend(`smtps://127.0.0.1:${r.ports.smtps}`, ['--user', 'scanner1:nope', '--cacert', cert.certFile], 'scanner@contoso.example', 'bob@contoso.example', msg);
    expect(wrong.code).not.toBe(0);
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: r.ports.starttls, secure: false, requireTLS: true, tls: { ca: readFileSync(cert.certFile), servername: 'localhost' }, auth: { user: 'scanner1', pass: PASSWORD } });
    const info = await transport.sendMail({ from: 'scanner@contoso.example', to: 'bob@contoso.example', subject: 'nodemailer', text: 'hi' });
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
    transport.close();
    expect(await receivedN(r, 4)).toHaveLength(4);
  });

  it('refuses a TLS 1.0-only client by default and accepts it when minVersion is TLSv1 (with a warning)', async () => {
    const listener = (minVersion?: string) => [{ name: 'old', host: '127.0.0.1', port: 0, tls: { mode: 'implicit', certFile: cert.certFile, keyFile: cert.keyFile, ...(minVersion ? { minVersion } : {}) } }];
    const modern = await relay({ listeners: listener() });
    const refused = await pyClient({ port: modern.smtpPort, mode: 'ssl', cafile: cert.certFile, tlsMax: 'TLSv1' });
    expect(refused.ok).toBe(false);
    expect(refused.code).toBe(-1);
    expect(modern.logs.some((l) => l.event === 'legacy-tls')).toBe(false);
    const legacy = await relay({ listeners: listener('TLSv1') });
    expect(legacy.logs.some((l) => l.event === 'legacy-tls')).toBe(true);
    const accepted = await pyClient({ port: legacy.smtpPort, mode: 'ssl', cafile: cert.certFile, tlsMax: 'TLSv1', from: 'a@contoso.example', to: ['b@contoso.example'], message: mail('a@contoso.example', 'b@contoso.example') });
    expect(accepted, JSON.stringify(accepted)).toMatchObject({ ok: true, tlsVersion: 'TLSv1' });
  });

  it('SIGHUP (systemctl reload) reads the certificate files again at once, and the relay keeps running', async () => {
    const dir = path.dirname(cert.certFile);
    const live: CertPair = { certFile: path.join(dir, 'hup.crt'), keyFile: path.join(dir, 'hup.key') };
    copyFileSync(cert.certFile, live.certFile);
    copyFileSync(cert.keyFile, live.keyFile);
    // A check interval of an hour: only the signal can make the relay see the new pair within this test.
    const r = await relay({ listeners: [{ name: 'smtps', host: '127.0.0.1', port: 0, tls: { mode: 'implicit', certFile: live.certFile, keyFile: live.keyFile, reloadCheckInterval: '1h' } }] }, true);
    const next = makeCert(dir, 'hup-next');
    copyFileSync(next.keyFile, live.keyFile);
    copyFileSync(next.certFile, live.certFile);
    r.child.kill('SIGHUP');
    await r.waitForLog((l) => l.event === 'tls-reloaded');
    expect(r.logs.some((l) => l.event === 'signal' && l.signal === 'SIGHUP')).toBe(true);
    const after = await pyClient({ port: r.smtpPort, mode: 'ssl', cafile: next.certFile });
    expect(after.ok, JSON.stringify(after)).toBe(true);
    expect(r.child.exitCode).toBeNull();
  });

  it('reloads a rotated certificate without dropping the sessions in progress, and keeps the old one if the new pair is broken', async () => {
    const dir = path.dirname(cert.certFile);
    const live: CertPair = { certFile: path.join(dir, 'live.crt'), keyFile: path.join(dir, 'live.key') };
    copyFileSync(cert.certFile, live.certFile);
    copyFileSync(cert.keyFile, live.keyFile);
    const r = await relay({ listeners: [{ name: 'smtps', host: '127.0.0.1', port: 0, tls: { mode: 'implicit', certFile: live.certFile, keyFile: live.keyFile, reloadCheckInterval: '100ms' } }] });
    const before = await pyClient({ port: r.smtpPort, mode: 'ssl', cafile: cert.certFile });
    expect(before.ok).toBe(true);
    // A session opened on the old certificate.
    const old = tls.connect({ host: '127.0.0.1', port: r.smtpPort, ca: readFileSync(cert.certFile), servername: 'localhost' });
    const lines: string[] = [];
    const nextLine = () => new Promise<string>((resolve) => old.once('data', (d: Buffer) => resolve(d.toString())));
    lines.push(await nextLine());
    expect(lines[0]).toMatch(/^220 /);

    const next = makeCert(dir, 'next');
    copyFileSync(next.keyFile, live.keyFile);
    copyFileSync(next.certFile, live.certFile);
    await r.waitForLog((l) => l.event === 'tls-reloaded');
    const after = await pyClient({ port: r.smtpPort, mode: 'ssl', cafile: next.certFile });
    expect(after.ok, JSON.stringify(after)).toBe(true);
    expect(after.certSha256).not.toBe(before.certSha256);
    old.write('NOOP\r\n');
    expect(await nextLine()).toMatch(/^250 /);
    old.destroy();

    writeFileSync(live.certFile, 'not a certificate');
    await r.waitForLog((l) => l.event === 'tls-reload-failed');
    const still = await pyClient({ port: r.smtpPort, mode: 'ssl', cafile: next.certFile });
    expect(still).toMatchObject({ ok: true, certSha256: after.certSha256 });
  });
});

describe('no open relay', () => {
  /** Presents `client` through the PROXY protocol from the trusted loopback peer. */
  async function proxied(port: number, client: string): Promise<RawSmtp> {
    const raw = await RawSmtp.connect(port);
    raw.write(`PROXY TCP4 ${client} 127.0.0.1 40000 25\r\n`);
    return raw;
  }

  const config = (auth: 'none' | 'optional') => ({
    users: users(),
    listeners: [{ name: 'lb', host: '127.0.0.1', port: 0, auth, allowedNetworks: ['10.0.0.0/8'], ...(auth === 'optional' ? { tls: { mode: 'starttls', certFile: cert.certFile, keyFile: cert.keyFile } } : {}), proxyProtocol: { trustedProxies: ['127.0.0.1/32'] } }],
    policy: { networks: [{ cidr: '10.1.2.0/24', allowedSenders: ['printer@contoso.example'], mailbox: 'printers@contoso.example' }] },
  });

  it('an outside client cannot connect when the listener has no AUTH; an inside one is held to its network rule', async () => {
    const r = await relay(config('none'));
    const outside = await proxied(r.smtpPort, '203.0.113.9');
    const refused = await outside.reply();
    expect(refused.code).toBe(554);
    expect(refused.text).toBe('554 5.7.1 Client host [203.0.113.9] is not allowed to relay: not in the allowed networks of listener "lb" (listeners[0].allowedNetworks)');
    outside.close();

    const inside = await proxied(r.smtpPort, '10.1.2.3');
    expect((await inside.reply()).code).toBe(220);
    await inside.cmd('EHLO printer.local');
    const ceo = await inside.cmd('MAIL FROM:<ceo@contoso.example>');
    expect(ceo.text).toBe('550 5.7.1 Sender <ceo@contoso.example> is not allowed for clients in 10.1.2.0/24 (policy.networks[0].allowedSenders)');
    expect((await inside.cmd('MAIL FROM:<printer@contoso.example>')).code).toBe(250);
    expect((await inside.cmd('RCPT TO:<anyone@example.org>')).code).toBe(250);
    expect((await inside.cmd('DATA')).code).toBe(354);
    const done = await inside.cmd('From: printer@contoso.example\r\nTo: anyone@example.org\r\nSubject: scan\r\n\r\nscan\r\n.');
    expect(done.code).toBe(250);
    inside.close();
    const [rec] = await receivedN(r, 1);
    expect(rec).toMatchObject({ client: '10.1.2.3', mailbox: 'printers@contoso.example' });

    // A trusted peer that does not send the header is not served at all.
    const noHeader = await RawSmtp.connect(r.smtpPort);
    noHeader.write('EHLO sneaky.local\r\n');
    await expect(noHeader.reply()).rejects.toThrow();
    noHeader.close();
  });

  it('reads PROXY protocol v2 (binary) headers as well', async () => {
    const r = await relay(config('none'));
    const v2 = (ip: string): Buffer => {
      const head = Buffer.from('0d0a0d0a000d0a515549540a2111000c', 'hex');
      const body = Buffer.alloc(12);
      ip.split('.').forEach((o, i) => body.writeUInt8(Number(o), i));
      [127, 0, 0, 1].forEach((o, i) => body.writeUInt8(o, 4 + i));
      body.writeUInt16BE(40000, 8);
      body.writeUInt16BE(25, 10);
      return Buffer.concat([head, body]);
    };
    const outside = await RawSmtp.connect(r.smtpPort);
    outside.write(v2('203.0.113.9'));
    expect((await outside.reply()).text).toMatch(/^554 5\.7\.1 Client host \[203\.0\.113\.9\]/);
    outside.close();
    const inside = await RawSmtp.connect(r.smtpPort);
    inside.write(v2('10.1.2.3'));
    expect((await inside.reply()).code).toBe(220);
    expect((await inside.cmd('EHLO printer.local')).code).toBe(250);
    expect((await inside.cmd('MAIL FROM:<printer@contoso.example>')).code).toBe(250);
    inside.close();
  });

  it('an outside client that may connect to authenticate cannot send anywhere without AUTH', async () => {
    const r = await relay(config('optional'));
    const outside = await proxied(r.smtpPort, '198.51.100.7');
    expect((await outside.reply()).code).toBe(220);
    await outside.cmd('EHLO outside.example');
    const mail1 = await outside.cmd('MAIL FROM:<printer@contoso.example>');
    expect(mail1.text).toMatch(/^530 5\.7\.0 Authentication required: client host \[198\.51\.100\.7\] is not in allowedNetworks/);
    const rcpt = await outside.cmd('RCPT TO:<victim@example.org>');
    expect(rcpt.code).toBe(503);
    expect((await outside.cmd('DATA')).code).toBe(503);
    outside.close();
    expect(received(r)).toHaveLength(0);
  });

  it('refuses a client outside allowedNetworks at connect on a listener without AUTH', async () => {
    const r = await relay({ listeners: [{ name: 'sidecar', host: '127.0.0.1', port: 0, allowedNetworks: ['10.0.0.0/8'] }] });
    const raw = await RawSmtp.connect(r.smtpPort);
    const greeting = await raw.reply();
    expect(greeting.text).toMatch(/^554 5\.7\.1 Client host \[127\.0\.0\.1\] is not allowed to relay: not in the allowed networks of listener "sidecar"/);
    raw.close();
  });
});

describe('configuration of the front door', () => {
  const check = (config: Record<string, unknown>): Promise<{ code: number; stderr: string }> => {
    const dir = path.dirname(cert.certFile);
    const file = path.join(dir, `cfg-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify({ delivery: { mode: 'capture' }, admin: { enabled: false }, mailboxes: { fallback: 'noreply@contoso.example' }, ...config }));
    return new Promise((resolve) => execFile(process.execPath, [CLI, 'check-config', '--config', file], (err, _o, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr })));
  };

  it('names the key of a plaintext password, a bad hash, or a TLS listener without a certificate', async () => {
    expect((await check({ users: [{ username: 'u', password: 'secret', allowedSenders: ['a@b.example'] }] })).stderr).toMatch(/users\[0\]\.password: plaintext passwords are not accepted/);
    expect((await check({ users: [{ username: 'u', passwordHash: 'secret', allowedSenders: ['a@b.example'] }] })).stderr).toMatch(/users\[0\]\.passwordHash: must be a hash made by/);
    expect((await check({ listeners: [{ tls: { mode: 'starttls' } }] })).stderr).toMatch(/listeners\[0\]\.tls\.certFile: is required when tls\.mode is starttls/);
    expect((await check({ listeners: [{ auth: 'required' }] })).stderr).toMatch(/listeners\[0\]\.auth: is required but no users are configured/);
    const typo = await check({ listeners: [{ tls: { mode: 'implicit', certFile: 'a', keyFile: 'b', minversion: 'TLSv1' } }] });
    expect(typo.stderr).toMatch(/listeners\[0\]\.tls\.minversion: unknown setting/);
  });

  it('hash-password reads stdin and prints a hash the relay accepts', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      const child = execFile(process.execPath, [CLI, 'hash-password'], (err, stdout) => (err ? reject(err) : resolve(stdout)));
      child.stdin!.end('s3cret-for-the-printer\n');
    });
    expect(out.trim()).toMatch(/^scrypt\$N=16384,r=8,p=1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    const res = await check({ users: [{ username: 'p', passwordHash: out.trim(), allowedSenders: ['@contoso.example'] }] });
    expect(res.code).toBe(0);
    expect(readdirSync(path.dirname(cert.certFile)).length).toBeGreaterThan(0);
  });
});

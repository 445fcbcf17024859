/** The product's spine end to end: real SMTP clients → the relay process → the Graph + Entra ID emulator. */

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { message, useTestbed } from '../helpers/graph-relay.js';
import type { RelayProcess } from '../helpers/relay-process.js';
import { RawSmtp, pySend } from '../helpers/smtp-clients.js';

const tb = useTestbed();

const relay = tb.relay.bind(tb);

const delivered = (qid?: string) => (l: { event?: string; qid?: string }) => l.event === 'delivered' && (qid === undefined || l.qid === qid);

/** Splits the MIME Graph received into the headers the relay added and the rest. */
function splitAdded(mime: Buffer): { bcc: string | null; received: string; rest: Buffer } {
  let text = mime.toString('latin1');
  let bcc: string | null = null;
  const b = /^Bcc:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n/.exec(text);
  if (b) {
    bcc = b[0];
    text = text.slice(b[0].length);
  }
  const r = /^Received:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n/.exec(text);
  if (!r) throw new Error(`no Received header at the top: ${text.slice(0, 200)}`);
  const offset = mime.length - Buffer.byteLength(text, 'latin1') + r[0].length;
  return { bcc, received: r[0], rest: mime.subarray(offset) };
}

describe('delivery through Graph', () => {
  it('delivers a message sent with Python smtplib byte for byte, plus the Received header', async () => {
    const r = await relay();
    const msg = message({ From: 'alice@contoso.example', To: 'bob@contoso.example', Subject: 'Quarterly report', 'Message-ID': '<q1@contoso.example>' }, 'Line one\r\nLine two\r\n');
    const res = await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], msg);
    expect(res.ok).toBe(true);
    const [sent] = await tb.emu.waitForSent(1);
    expect(sent!.upn).toBe('alice@contoso.example');
    expect(sent!.contentType).toMatch(/^text\/plain/);
    const { bcc, received, rest } = splitAdded(sent!.mime!);
    expect(bcc).toBeNull();
    expect(rest.equals(msg)).toBe(true);
    const rec = await r.waitForLog((l) => l.event === 'received');
    expect(received).toMatch(new RegExp(`^Received: from pytest\\.local \\(\\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby relay\\.test \\(smtp-graph-relay\\) with ESMTP id ${rec.qid}\\r\\n\\tfor <bob@contoso\\.example>;\\r\\n\\t\\w{3}, \\d{1,2} \\w{3} \\d{4} \\d\\d:\\d\\d:\\d\\d \\+0000\\r\\n$`));
    const log = await r.waitForLog(delivered(rec.qid));
    expect(log.requestId).toBe(sent!.requestId);
    expect(log).toMatchObject({ mailbox: 'alice@contoso.example', rcpts: 1, status: 202, attempt: 1 });
    expect(readdirSync(path.join(r.spoolDir, 'queue'))).toEqual([]);
    // The message's story is in the log; its body, the client secret and the tokens are not.
    const all = JSON.stringify(r.logs) + r.stderr.join('\n');
    expect(all).not.toContain('Line one');
    expect(all).not.toContain(tb.emu.clientSecret);
    expect(all).not.toMatch(/eyJ[\w-]{10,}\.[\w-]{10,}/);
    expect(r.logs.filter((l) => l.qid === rec.qid).map((l) => l.event)).toEqual(['received', 'delivered']);
  });

  it('adds envelope-only recipients as Bcc so each receives the message', async () => {
    const r = await relay();
    const msg = message({ From: 'alice@contoso.example', To: 'bob@contoso.example', Cc: 'carol@contoso.example', Subject: 'Hi', 'Message-ID': '<bcc@test.example>' }, 'x\r\n');
    const rcpts = ['bob@contoso.example', 'carol@contoso.example', 'dave@fabrikam.example', 'erin@fabrikam.example'];
    expect((await pySend(r.smtpPort, 'alice@contoso.example', rcpts, msg)).ok).toBe(true);
    const [sent] = await tb.emu.waitForSent(1);
    const { bcc, rest } = splitAdded(sent!.mime!);
    expect(bcc).toBe('Bcc: dave@fabrikam.example, erin@fabrikam.example\r\n');
    expect(rest.equals(msg)).toBe(true);
    expect([...sent!.recipients].sort()).toEqual([...rcpts].sort());
  });

  it('keeps 8-bit and UTF-8 content and an SMTPUTF8 address intact (nodemailer)', async () => {
    const r = await relay();
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: r.smtpPort, secure: false, ignoreTLS: true });
    const info = await transport.sendMail({
      from: 'jörg@contoso.example',
      to: 'zoë@contoso.example',
      subject: 'Grüße — 日本語 ✓',
      text: 'Ünïcödé body: 你好, Привет, emoji 📠\n',
      textEncoding: undefined,
      envelope: { from: 'jörg@contoso.example', to: ['zoë@contoso.example'] },
    });
    expect(info.accepted).toEqual(['zoë@contoso.example']);
    const [sent] = await tb.emu.waitForSent(1);
    expect(sent!.upn).toBe('jörg@contoso.example');
    const text = sent!.mime!.toString('utf8');
    expect(text).toContain('Received: from');
    expect(text).toMatch(/Subject: .+/);
    const { simpleParser } = await import('mailparser');
    const parsed = await simpleParser(sent!.mime!);
    expect(parsed.subject).toBe('Grüße — 日本語 ✓');
    expect(parsed.text).toBe('Ünïcödé body: 你好, Привет, emoji 📠\n');
  });

  it('passes raw 8-bit bytes through without re-encoding', async () => {
    const r = await relay();
    const body = Buffer.from('Caf\xe9 latin-1 bytes \xff\xfe and UTF-8 \u00e9\r\n', 'latin1');
    const msg = message({ From: 'alice@contoso.example', To: 'bob@contoso.example', Subject: '8bit', 'Message-ID': '<8bit@test.example>', 'Content-Type': 'text/plain; charset=iso-8859-1', 'Content-Transfer-Encoding': '8bit' }, body);
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], msg)).ok).toBe(true);
    const [sent] = await tb.emu.waitForSent(1);
    expect(splitAdded(sent!.mime!).rest.equals(msg)).toBe(true);
  });

  it('answers 552 5.3.4 to an oversized message, on SIZE= and during DATA', async () => {
    const r = await relay({ limits: { maxMessageSize: 64 * 1024 } });
    const c = await RawSmtp.connect(r.smtpPort);
    expect((await c.reply()).code).toBe(220);
    const ehlo = await c.cmd('EHLO raw.test');
    for (const ext of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', `SIZE ${64 * 1024}`]) expect(ehlo.text).toContain(ext);
    expect((await c.cmd('MAIL FROM:<alice@contoso.example> SIZE=100000')).text).toMatch(/^552 5\.3\.4 /);
    expect((await c.cmd('MAIL FROM:<alice@contoso.example>')).code).toBe(250);
    expect((await c.cmd('RCPT TO:<bob@contoso.example>')).code).toBe(250);
    expect((await c.cmd('DATA')).code).toBe(354);
    c.write(`Subject: big\r\n\r\n${'x'.repeat(998)}\r\n`.repeat(80));
    const end = await c.cmd('.');
    expect(end.text).toMatch(/^552 5\.3\.4 /);
    // The session goes on and the spool holds nothing of the refused message.
    expect((await c.cmd('RSET')).code).toBe(250);
    c.close();
    expect(readdirSync(path.join(r.spoolDir, 'queue'))).toEqual([]);
    expect(readdirSync(path.join(r.spoolDir, 'tmp'))).toEqual([]);
  });

  it('retries a 429 after its Retry-After and delivers exactly once', async () => {
    const r = await relay();
    tb.emu.script('alice@contoso.example', [{ status: 429, code: 'ApplicationThrottled', retryAfter: 1 }]);
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: 't' }, 'x\r\n'))).ok).toBe(true);
    const def = await r.waitForLog((l) => l.event === 'deferred');
    expect(def).toMatchObject({ status: 429, code: 'ApplicationThrottled', reason: 'throttled', retryInMs: 1000 });
    await r.waitForLog(delivered(def.qid));
    const toAlice = tb.emu.requests.filter((q) => q.op === 'sendMail');
    expect(toAlice.map((q) => q.status)).toEqual([429, 202]);
    // The retry honoured Retry-After: it came at least one second after the 429.
    expect(toAlice[1]!.at.getTime() - toAlice[0]!.at.getTime()).toBeGreaterThanOrEqual(990);
    expect(tb.emu.sent).toHaveLength(1);
  });

  it('retries 503, 504 and connection resets, then delivers', async () => {
    const r = await relay();
    tb.emu.script('*', [{ op: 'sendMail', status: 503, code: 'ServiceUnavailable' }, { op: 'sendMail', status: 504 }, { op: 'sendMail', resetBeforeBody: true }]);
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: 't' }, 'x\r\n'))).ok).toBe(true);
    const log = await r.waitForLog(delivered());
    expect(log.attempt).toBe(4);
    expect(tb.emu.sent).toHaveLength(1);
    // The 504 and the reset may have come after Graph took the message: each was looked up in Sent Items first.
    expect(r.logs.filter((l) => l.event === 'outcome-unknown').map((l) => l.reason)).toEqual(['http-504', expect.stringMatching(/^network-/)]);
    expect(r.logs.filter((l) => l.event === 'lookup-not-found')).toHaveLength(2);
  });

  it('moves a message refused with 403 to the dead-letter folder with the Graph error recorded', async () => {
    const r = await relay();
    tb.emu.script('*', [{ status: 403, code: 'ErrorAccessDenied', message: 'Access is denied. Check credentials and try again.' }]);
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: 't' }, 'x\r\n'))).ok).toBe(true);
    const dead = await r.waitForLog((l) => l.event === 'dead-lettered');
    expect(dead).toMatchObject({ status: 403, code: 'ErrorAccessDenied', reason: 'access-denied', level: 'error' });
    expect(dead.requestId).toMatch(/[0-9a-f-]{36}/);
    const env = JSON.parse(readFileSync(path.join(r.spoolDir, 'dead', `${dead.qid}.json`), 'utf8'));
    expect(env.lastError).toMatchObject({ kind: 'permanent', status: 403, code: 'ErrorAccessDenied', message: 'Access is denied. Check credentials and try again.' });
    expect(existsSync(path.join(r.spoolDir, 'dead', `${dead.qid}.msg`))).toBe(true);
    expect(readdirSync(path.join(r.spoolDir, 'queue'))).toEqual([]);
    expect(tb.emu.sent).toHaveLength(0);
  });

  it('fetches its Graph token at start, so the first message does not wait for Entra ID', async () => {
    const r = await relay();
    const token = await r.waitForLog((l) => l.event === 'token');
    expect(token).toMatchObject({ credential: 'secret', fresh: false });
    expect(r.logs.some((l) => l.event === 'received')).toBe(false);
    expect(tb.emu.sent).toHaveLength(0);
  });

  it('fetches one fresh token after a 401 and delivers', async () => {
    const r = await relay();
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: '1' }, 'x\r\n'))).ok).toBe(true);
    await r.waitForLog(delivered());
    const tokensBefore = tb.emu.tokenRequests.filter((t) => t.ok).length;
    tb.emu.revokeTokens();
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: '2' }, 'x\r\n'))).ok).toBe(true);
    const logs = await r.waitForLogs(delivered(), 2);
    expect(logs[1]!.attempt).toBe(1);
    expect(tb.emu.tokenRequests.filter((t) => t.ok).length).toBe(tokensBefore + 1);
    expect(tb.emu.requests.filter((q) => q.op === 'sendMail').map((q) => q.status)).toEqual([202, 401, 202]);
  });

  it('authenticates with a certificate (thumbprint computed from the PEM)', async () => {
    const r = await relay({ graph: { clientSecret: null, clientCertificatePath: tb.emu.pki.clientPemPath } });
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: 'c' }, 'x\r\n'))).ok).toBe(true);
    await r.waitForLog(delivered());
    expect(tb.emu.tokenRequests.at(-1)).toMatchObject({ ok: true, credential: 'certificate' });
  });

  it('delivers a message accepted just before a SIGKILL after the restart', async () => {
    tb.emu.setDown('reset');
    const r1 = await relay({}, { process: true }); // a real SIGKILL
    expect((await pySend(r1.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ Subject: 'survivor' }, 'x\r\n'))).ok).toBe(true);
    const rec = await r1.waitForLog((l) => l.event === 'received');
    await r1.waitForLog((l) => l.event === 'deferred');
    await r1.kill();
    tb.emu.setDown(false);
    const r2 = await relay({}, { dir: r1.dir });
    expect((await r2.waitForLog((l) => l.event === 'started')).queued).toBe(1);
    await r2.waitForLog(delivered(rec.qid));
    expect(tb.emu.sent).toHaveLength(1);
    expect(tb.emu.sent[0]!.mime!.toString()).toContain('Subject: survivor');
  });
});

describe('who may send, and from which mailbox', () => {
  it('refuses a client outside the allowed networks with a 5xx that says why', async () => {
    const r = await relay({ listeners: [{ name: 'lan', host: '127.0.0.1', port: 0, allowedNetworks: ['10.0.0.0/8'] }] });
    const c = await RawSmtp.connect(r.smtpPort);
    const greeting = await c.reply();
    expect(greeting.code).toBe(554);
    expect(greeting.text).toMatch(/5\.7\.1 Client host \[127\.0\.0\.1\] is not allowed to relay: not in the allowed networks of listener "lan"/);
    c.close();
  });

  it('resolves the mailbox by address mapping, domain mapping, the sender itself, then the fallback', async () => {
    const r = await relay({
      mailboxes: {
        map: { 'scanner@printer.local': 'scans@contoso.example', '@legacy.local': 'apps@contoso.example' },
        senderDomains: ['contoso.example'],
        fallback: 'noreply@contoso.example',
      },
    });
    const send = (from: string) => pySend(r.smtpPort, from, ['bob@contoso.example'], message({ Subject: from }, 'x\r\n'));
    for (const from of ['scanner@printer.local', 'erp@legacy.local', 'carol@contoso.example', 'made-up@device.invalid']) expect((await send(from)).ok).toBe(true);
    const sent = await tb.emu.waitForSent(4);
    const bySubject = Object.fromEntries(sent.map((s) => [/Subject: (\S+)/.exec(s.mime!.toString())![1], s.upn]));
    expect(bySubject).toEqual({
      'scanner@printer.local': 'scans@contoso.example',
      'erp@legacy.local': 'apps@contoso.example',
      'carol@contoso.example': 'carol@contoso.example',
      'made-up@device.invalid': 'noreply@contoso.example',
    });
  });

  it('refuses a sender it has no mailbox for at MAIL FROM with 550 5.7.1', async () => {
    const r = await relay({ mailboxes: { senderDomains: ['contoso.example'] } });
    const res = await pySend(r.smtpPort, 'someone@elsewhere.example', ['bob@contoso.example'], message({ Subject: 'x' }, 'x\r\n'));
    expect(res).toMatchObject({ ok: false, code: 550 });
    expect(res.message).toMatch(/^5\.7\.1 no mailbox for sender <someone@elsewhere\.example>/);
  });

  it('refuses a mail loop (more than 50 Received headers) with 554 5.4.6', async () => {
    const r = await relay();
    const hops = Array.from({ length: 51 }, (_, i) => `Received: from hop${i}.example by hop${i + 1}.example; Sat, 28 Nov 2026 00:00:00 +0000\r\n`).join('');
    const msg = Buffer.from(`${hops}Subject: loop\r\n\r\nx\r\n`);
    const res = await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], msg);
    expect(res).toMatchObject({ ok: false, code: 554 });
    expect(res.message).toMatch(/^5\.4\.6 Mail loop detected: 51 Received headers/);
    // 50 is still fine.
    const ok = await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], Buffer.from(`${hops.split('\r\n').slice(1).join('\r\n')}Subject: fifty\r\n\r\nx\r\n`));
    expect(ok.ok).toBe(true);
  });

  it('refuses header-only recipients when told to, and delivers them (logged) by default', async () => {
    const strict = await relay({ delivery: { headerOnlyRecipients: 'reject' } });
    const msg = message({ From: 'alice@contoso.example', To: 'bob@contoso.example, list@contoso.example', Subject: 'h' }, 'x\r\n');
    const res = await pySend(strict.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], msg);
    expect(res).toMatchObject({ ok: false, code: 550 });
    expect(res.message).toMatch(/^5\.7\.1 The message headers name 1 recipient\(s\) that are not envelope recipients \(e\.g\. <list@contoso\.example>\)/);
    const lenient = await relay();
    expect((await pySend(lenient.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], msg)).ok).toBe(true);
    expect(await lenient.waitForLog((l) => l.headerOnlyRcpts === 1 && l.level === 'warn')).toBeTruthy();
  });

  it('refuses a recipient that is not an internet address', async () => {
    const r = await relay();
    const c = await RawSmtp.connect(r.smtpPort);
    await c.reply();
    await c.cmd('EHLO raw.test');
    await c.cmd('MAIL FROM:<alice@contoso.example>');
    expect((await c.cmd('RCPT TO:<root>')).text).toMatch(/^501 5\.1\.3 /);
    expect((await c.cmd('RCPT TO:<root@localhost>')).text).toMatch(/^553 5\.1\.3 Recipient address <root@localhost> is not a valid internet address/);
    c.close();
  });
});

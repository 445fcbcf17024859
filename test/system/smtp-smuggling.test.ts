/** SMTP smuggling: a message ends only at <CRLF>.<CRLF>; bare CR/LF and NUL are refused or normalized, never a second message. */

import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcess } from '../helpers/relay-in-process.js';
import type { RelayProcess } from '../helpers/relay-process.js';
import { RawSmtp } from '../helpers/smtp-clients.js';

const SMUGGLED = 'MAIL FROM:<ceo@contoso.example>\r\nRCPT TO:<smuggled@contoso.example>\r\nDATA\r\nFrom: ceo@contoso.example\r\nSubject: smuggled\r\n\r\nwire the money\r\n';
const VECTORS: [string, string][] = [
  ['\\n.\\n', '\n.\n'],
  ['\\n.\\r\\n', '\n.\r\n'],
  ['\\r\\n.\\n', '\r\n.\n'],
  ['\\r.\\r', '\r.\r'],
  ['\\r.\\r\\n', '\r.\r\n'],
  ['\\r\\n\\0.\\r\\n', '\r\n\0.\r\n'],
];

async function session(port: number): Promise<RawSmtp> {
  const c = await RawSmtp.connect(port);
  c.socket.setNoDelay(true);
  expect((await c.reply()).code).toBe(220);
  expect((await c.cmd('EHLO client.local')).code).toBe(250);
  expect((await c.cmd('MAIL FROM:<alice@contoso.example>')).code).toBe(250);
  expect((await c.cmd('RCPT TO:<bob@contoso.example>')).code).toBe(250);
  expect((await c.cmd('DATA')).code).toBe(354);
  return c;
}

const HEAD = 'From: alice@contoso.example\r\nTo: bob@contoso.example\r\nSubject: hello\r\n\r\nfirst message';

function relay(bareLineEndings: 'reject' | 'normalize'): Promise<RelayProcess> {
  return startInProcess({ config: { delivery: { mode: 'capture' }, admin: { enabled: false }, mailboxes: { fallback: 'noreply@contoso.example' }, limits: { bareLineEndings } } });
}

const received = (r: RelayProcess) => r.logs.filter((l) => l.event === 'received');

describe('bareLineEndings: reject (default)', () => {
  let r: RelayProcess;
  beforeAll(async () => {
    r = await relay('reject');
  });
  afterAll(async () => {
    await r.kill();
  });

  for (const [name, vector] of VECTORS) {
    it(`refuses ${name} followed by pipelined commands with 550 5.6.0, and runs none of them`, async () => {
      const c = await session(r.smtpPort);
      c.write(`${HEAD}${vector}${SMUGGLED}.\r\nQUIT\r\n`);
      const res = await c.reply();
      expect(res.text).toMatch(/^550 5\.6\.0 Message refused: (bare (CR|LF)|NUL byte) at offset \d+/);
      // The very next reply answers QUIT: no 250 for a smuggled MAIL, RCPT or DATA.
      expect((await c.reply()).code).toBe(221);
      c.close();
      expect(received(r)).toHaveLength(0);
    });
  }

  it('keeps a dot-stuffed ".." line split across TCP segments as content: one message, one recipient', async () => {
    const before = received(r).length;
    const c = await session(r.smtpPort);
    const payload = `${HEAD}\r\n..\r\n${SMUGGLED}.\r\n`;
    // Every split point around the stuffed dot, each sent as its own write.
    const at = payload.indexOf('..');
    await new Promise<void>((resolve) => c.socket.write(payload.slice(0, at + 1), () => resolve()));
    await new Promise<void>((resolve) => setImmediate(resolve));
    c.write(`${payload.slice(at + 1)}QUIT\r\n`);
    const res = await c.reply();
    expect(res.code).toBe(250);
    expect((await c.reply()).code).toBe(221);
    c.close();
    const got = (await r.waitForLogs((l) => l.event === 'received', before + 1)).slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ from: 'alice@contoso.example', rcpts: 1 });
    const qid = String(got[0]!.qid);
    await r.waitForLog((l) => l.event === 'delivered' && l.qid === qid);
    const rec = JSON.parse(readFileSync(path.join(r.captureDir, `${qid}.json`), 'utf8'));
    expect(rec.envelope).toEqual({ mailFrom: 'alice@contoso.example', rcptTo: ['bob@contoso.example'] });
    const eml = readFileSync(path.join(r.captureDir, `${qid}.eml`), 'latin1');
    expect(eml).toContain('first message\r\n.\r\nMAIL FROM:<ceo@contoso.example>');
  });
});

describe('bareLineEndings: normalize', () => {
  it('turns bare line endings into CRLF and still delivers exactly one message to the real recipient', async () => {
    const r = await relay('normalize');
    try {
      for (const [, vector] of VECTORS.filter(([n]) => !n.includes('\\0'))) {
        const c = await session(r.smtpPort);
        c.write(`${HEAD}${vector}${SMUGGLED}.\r\nQUIT\r\n`);
        expect((await c.reply()).code).toBe(250);
        expect((await c.reply()).code).toBe(221);
        c.close();
      }
      const got = await r.waitForLogs((l) => l.event === 'received', VECTORS.length - 1);
      expect(got).toHaveLength(VECTORS.length - 1);
      await r.waitForLogs((l) => l.event === 'delivered', got.length);
      const files = readdirSync(r.captureDir).filter((f) => f.endsWith('.json'));
      expect(files).toHaveLength(got.length);
      for (const f of files) {
        const rec = JSON.parse(readFileSync(path.join(r.captureDir, f), 'utf8'));
        expect(rec.envelope.rcptTo).toEqual(['bob@contoso.example']);
        const eml = readFileSync(path.join(r.captureDir, f.replace(/\.json$/, '.eml')), 'latin1');
        expect(eml.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
      }
      // NUL stays refused in normalize mode.
      const c = await session(r.smtpPort);
      c.write(`${HEAD}\r\n\0.\r\n${SMUGGLED}.\r\nQUIT\r\n`);
      expect((await c.reply()).text).toMatch(/^550 5\.6\.0 Message refused: NUL byte/);
      expect((await c.reply()).code).toBe(221);
      c.close();
      expect(existsSync(r.captureDir)).toBe(true);
    } finally {
      await r.kill();
    }
  });
});

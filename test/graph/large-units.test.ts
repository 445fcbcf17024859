/** Units of the large-message route: MIME scan offsets, cutting parts out, part decoding, the upload budget, config keys. */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { describeMessage } from '../../src/mime/mime-attachments.js';
import { base64OfRanges } from '../../src/mime/compose.js';
import { planCut } from '../../src/graph/mime-cut.js';
import { scanMime } from '../../src/mime/mime-tree.js';
import { partToBuffer } from '../../src/mime/part-body.js';
import { UploadBudget } from '../../src/graph/upload-budget.js';
import { resolveMailbox } from '../../src/policy/mailbox.js';

const dir = mkdtempSync(path.join(tmpdir(), 'large-units-'));
let n = 0;
/** Each message is followed by bytes that are not part of it, as a spool file's envelope trailer is. */
const TRAILER = '{"not":"message"}\n#envelope 0000000018\n';
const sizes = new Map<string, number>();
function file(text: string | Buffer): string {
  const f = path.join(dir, `m${n++}.eml`);
  const bytes = Buffer.from(text);
  writeFileSync(f, Buffer.concat([bytes, Buffer.from(TRAILER)]));
  sizes.set(f, bytes.length);
  return f;
}
const scan = (f: string): ReturnType<typeof scanMime> => scanMime(f, sizes.get(f)!);

const NESTED = [
  'From: a@contoso.example',
  'To: b@contoso.example',
  'Subject: nested',
  'Content-Type: multipart/mixed; boundary="outer"',
  '',
  'preamble',
  '--outer',
  'Content-Type: multipart/alternative; boundary=inner',
  '',
  '--inner',
  'Content-Type: text/plain; charset=utf-8',
  'Content-Transfer-Encoding: quoted-printable',
  '',
  'Gr=C3=BC=C3=9Fe, a long line that is soft=',
  '-broken',
  '--inner',
  'Content-Type: text/html',
  '',
  '<p>hi</p>',
  '--inner--',
  'epilogue of inner',
  '--outer',
  'Content-Type: application/octet-stream',
  'Content-Disposition: attachment;',
  ' filename*0*=utf-8\'\'%C3%9Cber;',
  ' filename*1=weisung.bin',
  'Content-Transfer-Encoding: base64',
  '',
  'AAECAwQF',
  'BgcICQ==',
  '--outer',
  'Content-Type: image/png; name="=?utf-8?B?TG9nbyDinJMucG5n?="',
  'Content-ID: <logo@x>',
  'Content-Transfer-Encoding: base64',
  '',
  'iVBORw0K',
  '--outer--',
  '',
];

describe('scanMime and describeMessage', () => {
  for (const eol of ['\r\n', '\n']) {
    it(`finds parts, offsets and decoded names (${eol === '\n' ? 'LF' : 'CRLF'} line ends)`, async () => {
      const text = NESTED.join(eol);
      const f = file(text);
      const root = await scan(f);
      expect(root.contentType).toBe('multipart/mixed');
      expect(root.children.map((c) => c.contentType)).toEqual(['multipart/alternative', 'application/octet-stream', 'image/png']);
      // The logo counts as inline only because an HTML body references it (cid:logo@x).
      const parts = describeMessage(root, new Set(['logo@x']));
      expect(parts.text?.contentType).toBe('text/plain');
      expect(parts.html?.contentType).toBe('text/html');
      expect(text.slice(parts.html!.bodyStart, parts.html!.bodyEnd)).toBe('<p>hi</p>');
      expect(parts.attachments.map((a) => [a.name, a.isInline, a.contentId])).toEqual([
        ['Überweisung.bin', false, null],
        ['Logo ✓.png', true, 'logo@x'],
      ]);
      expect([...(await partToBuffer(f, parts.attachments[0]!.part))]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect((await partToBuffer(f, parts.text!)).toString('utf8')).toBe('Grüße, a long line that is soft-broken');
    });
  }

  it('ends a binary part exactly before the CRLF of the next delimiter, however long its last line', async () => {
    const bin = Buffer.alloc(5000, 0x41);
    bin[4999] = 0x0d; // a CR of its own at the very end must survive
    const f = file(Buffer.concat([Buffer.from('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n'), bin, Buffer.from('\r\n--b--\r\n')]));
    const parts = describeMessage(await scan(f));
    expect((await partToBuffer(f, parts.attachments[0]!.part)).equals(bin)).toBe(true);
  });

  it('copes with a part that has headers and no blank line', async () => {
    const f = file('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n');
    const root = await scan(f);
    expect(root.children.map((c) => c.contentType)).toEqual(['text/plain', 'application/pdf']);
    expect([...(await partToBuffer(f, describeMessage(root).attachments[0]!.part))]).toEqual([0, 1, 2]);
  });

  it('decodes base64 as Node does, whatever the line layout and wherever a 256 KB read cuts it', async () => {
    const sizes = [0, 1, 2, 3, 4, 191_999, 192_000, 192_001, 196_607, 196_608, 400_000];
    for (const [k, size] of sizes.entries()) {
      const bin = randomBytes(size);
      const lineLength = [76, 64, 1000, 0][k % 4]!; // 0: all on one line
      const eol = k % 3 === 0 ? '\n' : '\r\n';
      const oneLine = bin.toString('base64');
      const b64 = lineLength ? oneLine.replace(new RegExp(`.{${lineLength}}`, 'g'), `$&${eol}`) : oneLine;
      const body = Buffer.from(`Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}${eol}`);
      const f = file(body);
      const root = await scan(f);
      const got = await partToBuffer(f, root);
      expect(got.equals(Buffer.from(b64, 'base64')), `size ${size}, lines of ${lineLength}`).toBe(true);
      expect(got.equals(bin)).toBe(true);
    }
  });

  it('ends parts at end of file when the close delimiter is missing', async () => {
    const f = file('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n');
    const parts = describeMessage(await scan(f));
    expect(parts.attachments).toHaveLength(1);
    expect([...(await partToBuffer(f, parts.attachments[0]!.part))]).toEqual([0, 1, 2]);
  });
});

describe('planCut', () => {
  it('cuts the biggest attachments until the rest fits, and the rest is still valid MIME', async () => {
    const big = Buffer.alloc(300_000, 7).toString('base64').replace(/.{76}/g, '$&\r\n');
    const text = [
      'From: a@contoso.example',
      'To: b@contoso.example',
      'Subject: cut',
      'Content-Type: multipart/mixed; boundary=b',
      '',
      '--b',
      'Content-Type: text/plain',
      '',
      'body text',
      '--b',
      'Content-Type: application/pdf; name=big.pdf',
      'Content-Transfer-Encoding: base64',
      '',
      big,
      '--b',
      'Content-Type: text/csv; name=small.csv',
      '',
      'a,b',
      '--b--',
      '',
    ].join('\r\n');
    const f = file(text);
    const root = await scan(f);
    const parts = describeMessage(root);
    const prefix = Buffer.from('Bcc: x@y.example\r\n');
    const cut = planCut(text.length, prefix.length, parts.attachments, 64 * 1024)!;
    expect(cut.detached.map((a) => a.name)).toEqual(['big.pdf']);
    const chunks: Buffer[] = [];
    for await (const c of base64OfRanges(prefix, f, cut.kept)) chunks.push(c);
    const rest = Buffer.from(Buffer.concat(chunks).toString('latin1'), 'base64');
    expect(rest.length).toBe(prefix.length + cut.keptBytes);
    const parsed = await simpleParser(rest);
    expect(parsed.bcc && !Array.isArray(parsed.bcc) ? parsed.bcc.text : '').toBe('x@y.example');
    expect(parsed.text?.trim()).toBe('body text');
    expect(parsed.attachments.map((a) => [a.filename, a.content.toString()])).toEqual([['small.csv', 'a,b']]);
  });

  it('returns null when nothing can be cut (a single-part message)', async () => {
    const f = file('Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n' + 'QUFB\r\n'.repeat(20_000));
    const root = await scan(f);
    expect(planCut(120_000, 0, describeMessage(root).attachments, 64 * 1024)).toBeNull();
  });
});

describe('UploadBudget', () => {
  it('lets a message through while the window has room, and names when it frees up otherwise', () => {
    const b = new UploadBudget(150, 300_000);
    expect(b.reserve('M@x', 100, 0)).toEqual({ ok: true });
    expect(b.reserve('m@x', 40, 10)).toEqual({ ok: true });
    expect(b.reserve('m@x', 100, 20)).toEqual({ ok: false, retryAfterMs: 299_980 }); // when the first slides out
    expect(b.reserve('other@x', 100, 20)).toEqual({ ok: true }); // per mailbox
    expect(b.reserve('m@x', 100, 300_001)).toEqual({ ok: true });
  });

  it('lets a message bigger than the whole budget go when the window is empty', () => {
    const b = new UploadBudget(100, 1000);
    expect(b.reserve('m@x', 500, 0)).toEqual({ ok: true });
    expect(b.reserve('m@x', 500, 10)).toEqual({ ok: false, retryAfterMs: 990 });
  });
});

describe('configuration', () => {
  const graph = { tenantId: '6f1d3c2b-8a4e-4b7f-9c5d-2e0a1b3c4d5e', clientId: '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f', clientSecret: 's' };
  const env = { RELAY_FALLBACK_MAILBOX: 'relay@contoso.example' };
  it('defaults to 35 MB with the large route, allows up to 150 MB, and stays at one request without it', () => {
    expect(buildConfig({ graph }, env).limits.maxMessageSize).toBe(35 * 1024 * 1024);
    expect(buildConfig({ graph, limits: { maxMessageSize: '150MB' } }, env).limits.maxMessageSize).toBe(150 * 1024 * 1024);
    expect(() => buildConfig({ graph, limits: { maxMessageSize: '151MB' } }, env)).toThrow(/^limits\.maxMessageSize: must be between/);
    const off = buildConfig({ graph, delivery: { largeMessages: false } }, env);
    expect(off.limits.maxMessageSize).toBeLessThan(3 * 1024 * 1024);
    expect(() => buildConfig({ graph, delivery: { largeMessages: false }, limits: { maxMessageSize: '10MB' } }, env)).toThrow(/^limits\.maxMessageSize: /);
  });

  it('reads sentItems globally and per mapping, keeping string mappings', () => {
    const cfg = buildConfig(
      { graph, delivery: { sentItems: 'discard' }, mailboxes: { map: { '@printer.local': { mailbox: 'scans@contoso.com', sentItems: 'keep' }, 'a@b.example': 'box@contoso.com' } } },
      {},
    );
    expect(cfg.delivery.sentItems).toBe('discard');
    expect(resolveMailbox('x@printer.local', cfg.mailboxes)).toMatchObject({ ok: true, mailbox: 'scans@contoso.com', sentItems: 'keep' });
    const plain = resolveMailbox('a@b.example', cfg.mailboxes);
    expect(plain).toMatchObject({ ok: true, mailbox: 'box@contoso.com' });
    expect(plain).not.toHaveProperty('sentItems');
    expect(() => buildConfig({ graph, delivery: { sentItems: 'drop' } }, env)).toThrow(/^delivery\.sentItems: must be one of keep, discard/);
    expect(() => buildConfig({ graph, mailboxes: { map: { '@p.local': { mailbox: 'x@y.com', sentItems: 'nope' } } } }, env)).toThrow(/^mailboxes\.map\.@p\.local\.sentItems: /);
    expect(() => buildConfig({ graph, mailboxes: { map: { '@p.local': { mailbox: 'x@y.com', saveSent: true } } } }, env)).toThrow(/^mailboxes\.map\.@p\.local\.saveSent: unknown setting/);
  });
});

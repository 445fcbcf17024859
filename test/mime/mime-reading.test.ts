/** How the draft and JSON routes read a message: raw UTF-8 names, malformed Content-Types, inline parts, decoded sizes. */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { htmlContentIds, readMessageParts } from '../../src/mime/inline-parts.js';
import { buildJsonMessage } from '../../src/graph/json-message.js';
import { describeMessage, isCalendarInvite } from '../../src/mime/mime-attachments.js';
import { scanMime, type MimePart } from '../../src/mime/mime-tree.js';
import { decodedSize, partToBuffer } from '../../src/mime/part-body.js';

const dir = mkdtempSync(path.join(tmpdir(), 'mime-reading-'));
let n = 0;

/** Writes the message (bytes as given: latin1 strings keep raw 8-bit bytes) with a trailer that is not part of it. */
async function scanned(message: string | Buffer): Promise<{ file: string; root: MimePart }> {
  const file = path.join(dir, `m${n++}.eml`);
  const bytes = Buffer.isBuffer(message) ? message : Buffer.from(message, 'utf8');
  writeFileSync(file, Buffer.concat([bytes, Buffer.from('\n#envelope trailer\n')]));
  return { file, root: await scanMime(file, bytes.length) };
}

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
const mixed = (parts: string[]): string => `Content-Type: multipart/mixed; boundary=b\r\n\r\n${parts.map((p) => `--b\r\n${p}\r\n`).join('')}--b--\r\n`;

describe('header bytes', () => {
  it('reads a raw UTF-8 file name as UTF-8, in filename and in name', async () => {
    const { root } = await scanned(
      mixed([
        'Content-Type: text/plain\r\n\r\nscan attached',
        'Content-Type: application/pdf; name="Scan_Übersicht_東京.pdf"\r\nContent-Disposition: attachment; filename="Scan_Übersicht_東京.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC',
        'Content-Type: image/jpeg; name="Foto_Müller.jpg"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC',
      ]),
    );
    expect(describeMessage(root).attachments.map((a) => a.name)).toEqual(['Scan_Übersicht_東京.pdf', 'Foto_Müller.jpg']);
  });

  it('reads a line that is not valid UTF-8 as latin1, whatever the other lines are', async () => {
    const { root } = await scanned(
      Buffer.concat([
        Buffer.from('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\n'),
        latin1('Content-Type: application/pdf; name="Gr\xfc\xdfe.pdf"\r\n'),
        Buffer.from('Content-Description: Übersicht\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n', 'utf8'),
      ]),
    );
    expect(describeMessage(root).attachments.map((a) => a.name)).toEqual(['Grüße.pdf']);
  });

  it('still decodes RFC 2231 (with continuations) and RFC 2047 names', async () => {
    const { root } = await scanned(
      mixed([
        'Content-Type: text/plain\r\n\r\nx',
        "Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n filename*0*=utf-8''Scan%20%C3%9Cber;\r\n filename*1*=sicht%20%E6%9D%B1%E4%BA%AC.pdf\r\n\r\nAAEC",
        'Content-Type: application/pdf; name="=?UTF-8?B?U2Nhbl/DnGJlcnNpY2h0LnBkZg==?="\r\n\r\nAAEC',
      ]),
    );
    expect(describeMessage(root).attachments.map((a) => a.name)).toEqual(['Scan Übersicht 東京.pdf', 'Scan_Übersicht.pdf']);
  });

  it('gives JSON the subject and display names as the client wrote them, raw UTF-8 or latin1', async () => {
    const utf8 = await scanned('From: Jörg Müller <mfp@printer.local>\r\nTo: "東京 Büro" <tokyo@contoso.example>\r\nSubject: Scan Übersicht 東京\r\n\r\nbody\r\n');
    const m = await buildJsonMessage(utf8.file, utf8.root, describeMessage(utf8.root), { extraBcc: [], internetMessageId: false });
    expect(m).toMatchObject({
      subject: 'Scan Übersicht 東京',
      from: { emailAddress: { address: 'mfp@printer.local', name: 'Jörg Müller' } },
      toRecipients: [{ emailAddress: { address: 'tokyo@contoso.example', name: '東京 Büro' } }],
    });
    const old = await scanned(latin1('From: J\xf6rg <mfp@printer.local>\r\nTo: a@contoso.example\r\nSubject: Gr\xfc\xdfe\r\n\r\nbody\r\n'));
    const l = await buildJsonMessage(old.file, old.root, describeMessage(old.root), { extraBcc: [], internetMessageId: false });
    expect(l).toMatchObject({ subject: 'Grüße', from: { emailAddress: { name: 'Jörg' } } });
  });
});

describe('malformed Content-Type', () => {
  for (const ct of ['text', 'text/plain; charset=', ';;garbage==; x', 'text/plain garbage', '"text/plain"', 'application/']) {
    it(`takes "Content-Type: ${ct}" on a one-part message for a text body`, async () => {
      const { file, root } = await scanned(`From: mfp@printer.local\r\nTo: a@contoso.example\r\nSubject: broken\r\nContent-Type: ${ct}\r\n\r\nScan fertig: Grüße\r\n`);
      const parts = describeMessage(root);
      expect(parts.text).toBe(root);
      expect(parts.attachments).toEqual([]);
      const m = await buildJsonMessage(file, root, parts, { extraBcc: [], internetMessageId: false });
      expect(m['body']).toEqual({ contentType: 'text', content: 'Scan fertig: Grüße\n' });
    });
  }

  it('takes a broken text part of a multipart for the body, not an attachment', async () => {
    const { file, root } = await scanned(mixed(['Content-Type: text\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe', 'Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC']));
    const parts = describeMessage(root);
    expect(parts.attachments.map((a) => a.name)).toEqual(['a.pdf']);
    const m = await buildJsonMessage(file, root, parts, { extraBcc: [], internetMessageId: false });
    expect(m['body']).toEqual({ contentType: 'text', content: 'Grüße' });
  });
});

describe('inline parts', () => {
  const related = (html: string, images: string[]): string =>
    `Content-Type: multipart/related; boundary=r\r\n\r\n--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n${html}\r\n${images.map((i) => `--r\r\n${i}\r\n`).join('')}--r--\r\n`;
  const image = (name: string, headers: string): string => `Content-Type: image/png; name=${name}\r\n${headers}Content-Transfer-Encoding: base64\r\n\r\niVBORw0K`;

  it('is inline only when the HTML references its Content-ID (any case, brackets, percent-encoding)', async () => {
    const { file, root } = await scanned(
      related('<p><img src="cid:Logo@Scan"><img src=CID:sig%40mfp> <div style="background:url(cid:bg@mfp)"></div></p>', [
        image('logo.png', 'Content-ID: <logo@scan>\r\nContent-Disposition: inline\r\n'),
        image('sig.png', 'Content-ID: sig@mfp\r\n'),
        image('bg.png', 'Content-ID: <BG@MFP>\r\n'),
        image('unused.png', 'Content-ID: <unused@mfp>\r\nContent-Disposition: inline\r\n'),
        image('plain.png', 'Content-Disposition: inline\r\n'),
        image('attached.png', 'Content-ID: <logo-att@scan>\r\nContent-Disposition: attachment\r\n'),
      ]).replace('</p>', '<img src="cid:logo-att@scan"></p>'),
    );
    const parts = await readMessageParts(file, root);
    expect(parts.attachments.map((a) => [a.name, a.isInline])).toEqual([
      ['logo.png', true],
      ['sig.png', true],
      ['bg.png', true],
      ['unused.png', false],
      ['plain.png', false],
      ['attached.png', false],
    ]);
  });

  it('finds a cid: URL that a 256 KB read cuts in two, in a base64 HTML body', async () => {
    const padding = 'x'.repeat(256 * 1024 - 20);
    const html = Buffer.from(`<p>${padding}<img src="cid:far-away@scan"></p>`);
    const { file, root } = await scanned(`Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n${html.toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n`);
    expect([...(await htmlContentIds(file, root))]).toEqual(['far-away@scan']);
  });

  it('has no inline parts without an HTML body', async () => {
    const { file, root } = await scanned(mixed(['Content-Type: text/plain\r\n\r\ncid:logo@scan', image('logo.png', 'Content-ID: <logo@scan>\r\n')]));
    expect((await readMessageParts(file, root)).attachments.map((a) => a.isInline)).toEqual([false]);
  });
});

describe('calendar invitations and decoded sizes', () => {
  it('knows an invitation by text/calendar with a method', async () => {
    const { root } = await scanned(mixed(['Content-Type: text/plain\r\n\r\nx', 'Content-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR', 'Content-Type: text/calendar; name=old.ics\r\n\r\nBEGIN:VCALENDAR']));
    expect(describeMessage(root).attachments.map((a) => isCalendarInvite(a.part))).toEqual([true, false]);
  });

  it('measures the decoded size of base64, quoted-printable and 8bit parts as decoding them gives it', async () => {
    const bin = randomBytes(100_003);
    const { file, root } = await scanned(
      mixed([
        'Content-Type: text/plain\r\n\r\nx',
        `Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n${bin.toString('base64').replace(/.{64}/g, '$& \r\n')}`,
        'Content-Type: text/csv\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db,soft=\r\nbreak=C3=BC',
        'Content-Type: text/csv\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße,1\r\nzwei,2',
      ]),
    );
    for (const a of describeMessage(root).attachments) expect(await decodedSize(file, a.part), a.contentType).toBe((await partToBuffer(file, a.part)).length);
    expect(await decodedSize(file, describeMessage(root).attachments[0]!.part)).toBe(bin.length);
  });
});

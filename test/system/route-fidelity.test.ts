/** The JSON and draft routes keep what the client sent: raw UTF-8 names, broken text parts, inline images, invitations. */

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { useTestbed } from '../helpers/graph-relay.js';
import { composeToFile, sendFile, sendRaw8bit, sha256 } from '../helpers/large-mail.js';
import type { LogLine } from '../helpers/relay-process.js';

const MB = 1024 * 1024;
const UPN = 'scans@contoso.example';
const DISCARD = { mailboxes: { map: { '@printer.local': { mailbox: UPN, sentItems: 'discard' } } } };

const tb = useTestbed();
const relay = tb.relay.bind(tb);
const delivered = (l: LogLine): boolean => l.event === 'delivered';

type Json = Record<string, any>;
const b64 = (b: Buffer): string => b.toString('base64').replace(/.{76}/g, '$&\r\n');

/** A multipart/mixed message of raw UTF-8 text: header bytes go as they are, with no RFC 2047 or 2231 encoding. */
function rawMessage(headers: string, parts: string[]): Buffer {
  const body = parts.map((p) => `--b\r\n${p}\r\n`).join('');
  return Buffer.from(`${headers}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n${body}--b--\r\n`, 'utf8');
}
const textPart = (text: string): string => `Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${text}`;
const filePart = (name: string, type: string, bytes: Buffer): string =>
  `Content-Type: ${type}; name="${name}"\r\nContent-Disposition: attachment; filename="${name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64(bytes)}`;

describe('raw UTF-8 header bytes', () => {
  const NAME = 'Scan_Übersicht_東京.pdf';
  const HEADERS = 'From: Scanner Büro 東京 <mfp@printer.local>\r\nTo: joerg@contoso.example\r\nSubject: Scan Übersicht 東京\r\n';

  it('reach JSON sendMail as the exact file name, subject and display name', async () => {
    const r = await relay(DISCARD);
    const pdf = randomBytes(20_000);
    await sendRaw8bit(r.smtpPort, 'mfp@printer.local', ['joerg@contoso.example'], rawMessage(HEADERS, [textPart('Grüße aus Tokio'), filePart(NAME, 'application/pdf', pdf)]));
    const [sent] = await tb.emu.waitForSent(1);
    expect((await r.waitForLog(delivered)).route).toBe('json');
    const m = (sent!.json as Json).message as Json;
    expect(m.subject).toBe('Scan Übersicht 東京');
    // The device's From becomes the sending mailbox (Exchange refuses any other); its UTF-8 name stays exact.
    expect(m.from).toEqual({ emailAddress: { address: 'scans@contoso.example', name: 'Scanner Büro 東京' } });
    expect(m.body).toEqual({ contentType: 'text', content: 'Grüße aus Tokio' });
    expect(m.attachments).toHaveLength(1);
    expect(m.attachments[0]).toMatchObject({ name: NAME, contentType: 'application/pdf', isInline: false });
    expect(sha256(Buffer.from(m.attachments[0].contentBytes, 'base64'))).toBe(sha256(pdf));
  });

  it('reach an upload session of the large route as the exact file name', async () => {
    const r = await relay();
    const pdf = randomBytes(4 * MB);
    await sendRaw8bit(r.smtpPort, 'scanner@contoso.example', ['joerg@contoso.example'], rawMessage(HEADERS.replace('mfp@printer.local', 'scanner@contoso.example'), [textPart('groß'), filePart(NAME, 'application/pdf', pdf)]));
    const [sent] = await tb.emu.waitForSent(1, 60_000);
    expect((await r.waitForLog(delivered)).route).toBe('large');
    expect(sent!.via).toBe('draft');
    expect(sent!.attachments).toHaveLength(1);
    expect(sent!.attachments![0]).toMatchObject({ name: NAME, via: 'uploadSession', contentType: 'application/pdf', sha256: sha256(pdf) });
  });
});

describe('malformed Content-Type', () => {
  for (const ct of ['text', 'text/plain; charset=', 'text/plain;; =oops; garbage']) {
    it(`"Content-Type: ${ct}" on a one-part message is the body, not an attachment`, async () => {
      const r = await relay(DISCARD);
      const msg = Buffer.from(`From: mfp@printer.local\r\nTo: joerg@contoso.example\r\nSubject: Scan\r\nContent-Type: ${ct}\r\n\r\nScan fertig: 3 Seiten\r\n`);
      await sendRaw8bit(r.smtpPort, 'mfp@printer.local', ['joerg@contoso.example'], msg);
      const [sent] = await tb.emu.waitForSent(1);
      const m = (sent!.json as Json).message as Json;
      expect(m.body).toEqual({ contentType: 'text', content: 'Scan fertig: 3 Seiten\n' });
      expect(m.attachments).toBeUndefined();
    });
  }
});

describe('inline images', () => {
  it('JSON sendMail: only the image the HTML references is inline; an unreferenced one with a Content-ID is an attachment', async () => {
    const r = await relay(DISCARD);
    const logo = randomBytes(2000);
    const stamp = randomBytes(3000);
    const file = await composeToFile({
      from: 'mfp@printer.local',
      to: 'joerg@contoso.example',
      subject: 'Inline',
      html: '<p>Logo: <img src="CID:Logo@MFP"></p>',
      attachments: [
        { filename: 'logo.png', content: logo, cid: 'logo@mfp', contentType: 'image/png' },
        // nodemailer writes Content-Disposition: inline and a Content-ID for this one too; the HTML never shows it.
        { filename: 'stamp.png', content: stamp, cid: 'stamp@mfp', contentType: 'image/png' },
      ],
    });
    await sendFile(r.smtpPort, 'mfp@printer.local', ['joerg@contoso.example'], file);
    const [sent] = await tb.emu.waitForSent(1);
    const atts = ((sent!.json as Json).message as Json).attachments as Json[];
    expect(atts.map((a) => [a.name, a.isInline, a.contentId])).toEqual([
      ['logo.png', true, 'logo@mfp'],
      ['stamp.png', false, 'stamp@mfp'],
    ]);
  });

  it('large route: an uploaded image with a Content-ID that no HTML references goes up with isInline false', async () => {
    const r = await relay();
    const photo = randomBytes(Math.round(3.5 * MB));
    const file = await composeToFile({
      from: 'scanner@contoso.example',
      to: 'joerg@contoso.example',
      subject: 'Photo',
      html: '<p>see the attachment</p>',
      attachments: [{ filename: 'photo.jpg', content: photo, cid: 'photo@scan', contentType: 'image/jpeg' }],
    });
    await sendFile(r.smtpPort, 'scanner@contoso.example', ['joerg@contoso.example'], file);
    const [sent] = await tb.emu.waitForSent(1, 60_000);
    expect(sent!.attachments![0]).toMatchObject({ name: 'photo.jpg', via: 'uploadSession', isInline: false, contentId: 'photo@scan', sha256: sha256(photo) });
  });
});

describe('calendar invitations', () => {
  const ICS = 'BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:booking-7@contoso.example\r\nSUMMARY:Room 4\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n';
  const invite = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    to: 'joerg@contoso.example',
    subject: 'Room booking',
    text: 'You are invited',
    icalEvent: { method: 'REQUEST', content: ICS },
    ...extra,
  });

  it('a discard mailbox sends an invitation as MIME sendMail, and logs that Sent Items keeps a copy', async () => {
    const r = await relay(DISCARD);
    await sendFile(r.smtpPort, 'booking@printer.local', ['joerg@contoso.example'], await composeToFile({ from: 'booking@printer.local', ...invite() }));
    const [sent] = await tb.emu.waitForSent(1);
    const warn = await r.waitForLog((l) => l.event === 'sent-items-kept');
    expect(warn.reason).toBe('calendar');
    expect(warn.msg).toMatch(/calendar invitation/);
    expect((await r.waitForLog(delivered)).route).toBe('mime');
    expect(sent!.contentType).toBe('text/plain');
    expect(sent!.mime!.toString('latin1')).toMatch(/Content-Type: text\/calendar; charset=utf-8; method=REQUEST/);
  });

  it('the large route never cuts the invitation out of the draft MIME: it uploads other parts instead', async () => {
    const r = await relay({ graph: { maxRequestBytes: '100KB' } });
    // About 45 KB of invitation and a 26 KB PDF (35 KB as base64): besides nodemailer's .ics copy, one of them
    // must go, and it is not the invitation.
    const notes = Array.from({ length: 600 }, (_, i) => `X-NOTE-${i}:${'n'.repeat(64)}`).join('\r\n');
    const pdf = randomBytes(26 * 1024);
    const file = await composeToFile({
      from: 'booking@contoso.example',
      ...invite({ icalEvent: { method: 'REQUEST', content: ICS.replace('END:VEVENT', `${notes}\r\nEND:VEVENT`) }, attachments: [{ filename: 'plan.pdf', content: pdf, contentType: 'application/pdf' }] }),
    });
    await sendFile(r.smtpPort, 'booking@contoso.example', ['joerg@contoso.example'], file);
    const [sent] = await tb.emu.waitForSent(1);
    expect((await r.waitForLog(delivered)).route).toBe('large');
    expect(sent!.contentType).toBe('text/plain'); // a draft made from the MIME
    expect(sent!.mime!.toString('latin1')).toMatch(/Content-Type: text\/calendar; charset=utf-8; method=REQUEST/);
    // nodemailer also attaches the invitation as invite.ics (application/ics): that copy may go, the text/calendar part may not.
    expect(sent!.mime!.toString('latin1')).toContain('X-NOTE-599:');
    expect(sent!.attachments!.map((a) => [a.name, a.contentType])).toEqual([
      ['plan.pdf', 'application/pdf'],
      ['invite.ics', 'application/ics'],
    ]);
    expect(sent!.attachments![0]!.sha256).toBe(sha256(pdf));
  });

  it('an invitation that only a JSON draft could carry is refused, not sent as a plain .ics', async () => {
    const r = await relay({ graph: { maxRequestBytes: '100KB' } });
    // 90 KB of body text: as base64 MIME over 100 KB whatever is cut, as JSON under it.
    const file = await composeToFile({ from: 'booking@contoso.example', ...invite({ text: 'agenda '.repeat(13_000) }) });
    await sendFile(r.smtpPort, 'booking@contoso.example', ['joerg@contoso.example'], file);
    const dead = await r.waitForLog((l) => l.event === 'dead-lettered');
    expect(dead.reason).toBe('message-too-big');
    expect(String(dead.error)).toMatch(/calendar invitation .*as a JSON draft the invitation would arrive as a plain \.ics attachment/);
    expect(tb.emu.sent).toEqual([]);
    expect(tb.emu.requests).toEqual([]);
  });
});

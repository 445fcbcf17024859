/** Issue 4: messages too big for one sendMail request go through a draft, attachment uploads and send, intact. */

import { readdirSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import type { SentRecord } from '../emulator/emulator.js';
import { useTestbed } from '../helpers/graph-relay.js';
import { composeToFile, randomFile, sendFile, sha256 } from '../helpers/large-mail.js';
import type { LogLine } from '../helpers/relay-process.js';
import { RawSmtp } from '../helpers/smtp-clients.js';

const UPN = 'scanner@contoso.example';
const MB = 1024 * 1024;

const tb = useTestbed();
const relay = tb.relay.bind(tb);

const delivered = (l: LogLine): boolean => l.event === 'delivered';

/** Every attachment Graph ends up with: the ones left in the draft's MIME plus the ones added to the draft. */
async function allAttachments(rec: SentRecord): Promise<{ name: string; sha256: string; contentType: string | undefined; inline: boolean; cid: string | undefined; via: string }[]> {
  const parsed = await simpleParser(rec.mime!, { skipImageLinks: true });
  const fromMime = parsed.attachments.map((a) => ({
    name: a.filename ?? '',
    sha256: sha256(a.content),
    contentType: a.contentType,
    inline: a.related === true || a.contentDisposition === 'inline',
    cid: a.cid,
    via: 'mime',
  }));
  const added = (rec.attachments ?? []).map((a) => ({ name: a.name, sha256: a.sha256!, contentType: a.contentType, inline: a.isInline, cid: a.contentId, via: a.via }));
  return [...fromMime, ...added];
}

describe('large-message route', () => {
  it('relays a 20 MB scan with alternative bodies, an inline image, an attached .eml and non-ASCII names, field by field', async () => {
    const r = await relay();
    const pdf = await randomFile(20 * MB);
    const logo = randomBytes(2000);
    const inner = Buffer.from('From: a@fabrikam.example\r\nTo: b@fabrikam.example\r\nSubject: inner message\r\nMessage-ID: <inner@fabrikam.example>\r\n\r\nhello from inside\r\n');
    const file = await composeToFile({
      from: 'Scanner <scanner@contoso.example>',
      to: 'Jörg <joerg@contoso.example>',
      cc: 'carol@contoso.example',
      replyTo: 'helpdesk@contoso.example',
      subject: 'Scan: Überweisung – März 2026 ✓',
      messageId: '<scan-20mb@printer.local>',
      text: 'Plain body: Grüße',
      html: '<p>HTML body: Grüße <img src="cid:logo@scan"></p>',
      headers: { 'X-Scanner-Id': 'MFP-7' },
      attachments: [
        { filename: 'Überweisung März €.pdf', path: pdf.path, contentType: 'application/pdf' },
        { filename: 'logo.png', content: logo, cid: 'logo@scan', contentType: 'image/png' },
        { filename: 'weitergeleitet.eml', content: inner, contentType: 'message/rfc822' },
      ],
    });
    await sendFile(r.smtpPort, UPN, ['joerg@contoso.example', 'carol@contoso.example', 'dave@fabrikam.example'], file);
    const [sent] = await tb.emu.waitForSent(1, 60_000);
    const log = await r.waitForLog(delivered);
    expect(log).toMatchObject({ route: 'large', status: 202, attempt: 1 });
    expect(sent!.via).toBe('draft');
    expect(sent!.upn).toBe(UPN);
    expect(sent!.contentType).toBe('text/plain'); // the draft was made from the MIME itself

    const parsed = await simpleParser(sent!.mime!, { skipImageLinks: true });
    expect(parsed.subject).toBe('Scan: Überweisung – März 2026 ✓');
    expect(parsed.messageId).toBe('<scan-20mb@printer.local>');
    // mailparser shows an attached message's text after the body; the .eml itself is checked below.
    expect(parsed.text).toMatch(/^Plain body: Grüße\n/);
    expect(parsed.html).toContain('HTML body: Grüße <img src="cid:logo@scan">');
    expect(parsed.headers.get('x-scanner-id')).toBe('MFP-7');
    expect((parsed.replyTo?.value ?? []).map((a) => a.address)).toEqual(['helpdesk@contoso.example']);
    expect([...sent!.recipients].sort()).toEqual(['carol@contoso.example', 'dave@fabrikam.example', 'joerg@contoso.example']);

    const atts = await allAttachments(sent!);
    const big = atts.find((a) => a.name === 'Überweisung März €.pdf');
    expect(big).toMatchObject({ sha256: pdf.sha256, contentType: 'application/pdf', via: 'uploadSession', inline: false });
    expect(atts.find((a) => a.name === 'logo.png')).toMatchObject({ sha256: sha256(logo), inline: true, cid: 'logo@scan' });
    // The attached message stays one message/rfc822 part of the draft, byte for byte (mailparser would
    // unfold it into its own parts, so it is checked in the raw MIME).
    const raw = sent!.mime!.toString('latin1');
    expect(raw).toMatch(/\r\nContent-Type: message\/rfc822; name=weitergeleitet\.eml\r\n/);
    expect(sent!.mime!.includes(inner)).toBe(true);
    expect(atts.filter((a) => a.name !== 'weitergeleitet.eml')).toHaveLength(2);
    expect(tb.emu.drafts(UPN)).toEqual([]);
    expect(readdirSync(path.join(r.spoolDir, 'tmp'))).toEqual([]);
  });

  it('uploads a big inline image with isInline and contentId, and many small attachments over 4 MB in total', async () => {
    const r = await relay();
    const photo = randomBytes(Math.round(3.5 * MB));
    const smalls = Array.from({ length: 12 }, (_, i) => ({ name: `page-${i + 1}-ü.jpg`, bytes: randomBytes(400 * 1024) }));
    const file = await composeToFile({
      from: UPN,
      to: 'joerg@contoso.example',
      subject: 'Many pages',
      html: '<p><img src="cid:photo@scan"></p>',
      attachments: [
        { filename: 'photo.jpg', content: photo, cid: 'photo@scan', contentType: 'image/jpeg' },
        ...smalls.map((s) => ({ filename: s.name, content: s.bytes, contentType: 'image/jpeg' })),
      ],
    });
    await sendFile(r.smtpPort, UPN, ['joerg@contoso.example'], file);
    const [sent] = await tb.emu.waitForSent(1, 60_000);
    expect((await r.waitForLog(delivered)).route).toBe('large');
    const atts = await allAttachments(sent!);
    expect(atts).toHaveLength(13);
    expect(atts.find((a) => a.name === 'photo.jpg')).toMatchObject({ sha256: sha256(photo), inline: true, cid: 'photo@scan', contentType: 'image/jpeg', via: 'uploadSession' });
    for (const s of smalls) expect(atts.find((a) => a.name === s.name)).toMatchObject({ sha256: sha256(s.bytes), contentType: 'image/jpeg', inline: false });
    // Some small ones went up directly (under 3 MB), the rest stayed in the draft's MIME.
    expect(atts.filter((a) => a.via === 'direct').length).toBeGreaterThan(0);
    expect(atts.filter((a) => a.via === 'mime').length).toBeGreaterThan(0);
  });

  it('builds a JSON draft when the MIME cannot be cut: a single-part 5 MB PDF', async () => {
    const r = await relay();
    const pdf = randomBytes(5 * MB);
    const b64 = pdf.toString('base64').replace(/.{76}/g, '$&\r\n');
    const msg = Buffer.from(
      `From: Scanner <${UPN}>\r\nTo: joerg@contoso.example\r\nSubject: =?utf-8?q?Scan_f=C3=BCr_J=C3=B6rg?=\r\nX-Scanner-Id: MFP-9\r\nMIME-Version: 1.0\r\n` +
        `Content-Type: application/pdf; name="scan.pdf"\r\nContent-Disposition: attachment; filename*=utf-8''Scan%20f%C3%BCr%20J%C3%B6rg.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}\r\n`,
      'latin1',
    );
    const file = await composeToFile({ raw: msg });
    await sendFile(r.smtpPort, UPN, ['joerg@contoso.example', 'audit@contoso.example'], file);
    const [sent] = await tb.emu.waitForSent(1, 60_000);
    expect((await r.waitForLog(delivered)).route).toBe('large');
    expect(sent!.contentType).toBe('application/json');
    const m = sent!.json as Record<string, any>;
    expect(m.subject).toBe('Scan für Jörg');
    expect(m.toRecipients).toEqual([{ emailAddress: { address: 'joerg@contoso.example' } }]);
    expect(m.bccRecipients).toEqual([{ emailAddress: { address: 'audit@contoso.example' } }]);
    expect(m.internetMessageHeaders).toEqual([{ name: 'X-Scanner-Id', value: 'MFP-9' }]);
    expect(sent!.attachments).toHaveLength(1);
    expect(sent!.attachments![0]).toMatchObject({ name: 'Scan für Jörg.pdf', contentType: 'application/pdf', sha256: sha256(pdf), via: 'uploadSession', isInline: false });
  });

  it('relays a 100 MB message with two binary attachments, sha256 equal', async () => {
    const r = await relay({ limits: { maxMessageSize: '110MB' } });
    const a = await randomFile(40 * MB);
    const b = await randomFile(33 * MB);
    const file = await composeToFile({
      from: UPN,
      to: 'joerg@contoso.example',
      subject: 'Archive',
      text: 'two volumes',
      attachments: [
        { filename: 'vol1.bin', path: a.path, contentType: 'application/octet-stream' },
        { filename: 'vol2.bin', path: b.path, contentType: 'application/octet-stream' },
      ],
    });
    await sendFile(r.smtpPort, UPN, ['joerg@contoso.example'], file);
    const rec = await r.waitForLog((l) => l.event === 'received', 120_000);
    expect(Number(rec.size)).toBeGreaterThan(99 * MB);
    const [sent] = await tb.emu.waitForSent(1, 180_000);
    const atts = await allAttachments(sent!);
    expect(atts.find((x) => x.name === 'vol1.bin')).toMatchObject({ sha256: a.sha256, via: 'uploadSession' });
    expect(atts.find((x) => x.name === 'vol2.bin')).toMatchObject({ sha256: b.sha256, via: 'uploadSession' });
    expect((await simpleParser(sent!.mime!)).text?.trim()).toBe('two volumes');
  }, 300_000);

  it('deletes the draft when an upload chunk fails, and delivers on the retry from the start', async () => {
    const r = await relay({ delivery: { retry: { schedule: ['200ms'] } } });
    const pdf = await randomFile(9 * MB);
    const file = await composeToFile({ from: UPN, to: 'joerg@contoso.example', subject: 'Retry me', text: 'x', attachments: [{ filename: 'scan.pdf', path: pdf.path }] });
    // The second chunk of the first upload fails; later requests go through.
    tb.emu.script(UPN, [{ op: 'uploadChunk', accept: true }, { op: 'uploadChunk', status: 503 }]);
    await sendFile(r.smtpPort, UPN, ['joerg@contoso.example'], file);
    const deferred = await r.waitForLog((l) => l.event === 'deferred');
    expect(deferred).toMatchObject({ route: 'large', status: 503 });
    const [sent] = await tb.emu.waitForSent(1, 60_000);
    const log = await r.waitForLog(delivered);
    expect(log.attempt).toBe(2);
    expect(tb.emu.sent).toHaveLength(1);
    expect(tb.emu.drafts(UPN)).toEqual([]);
    // The failed attempt's draft was deleted, not left behind.
    const deletes = tb.emu.requests.filter((q) => q.op === 'deleteDraft');
    expect(deletes).toHaveLength(1);
    expect(deletes[0]!.status).toBe(204);
    expect(sent!.attachments?.[0]).toMatchObject({ name: 'scan.pdf', sha256: pdf.sha256 });
  });

  it('names the Mail.ReadWrite permission when Graph refuses the draft', async () => {
    const r = await relay();
    tb.emu.script(UPN, [{ op: 'createDraft', status: 403 }]);
    const pdf = await randomFile(5 * MB);
    const file = await composeToFile({ from: UPN, to: 'joerg@contoso.example', subject: 'No permission', text: 'x', attachments: [{ filename: 'a.pdf', path: pdf.path }] });
    await sendFile(r.smtpPort, UPN, ['joerg@contoso.example'], file);
    const dead = await r.waitForLog((l) => l.event === 'dead-lettered');
    expect(dead.reason).toBe('large-route-forbidden');
    expect(String(dead.error)).toMatch(/^Graph refused the draft \(403 ErrorAccessDenied\): the large-message route needs the Mail\.ReadWrite application permission/);
    expect(tb.emu.sent).toEqual([]);
  });

  it('defers a message that would exceed the mailbox upload budget until the window frees it', async () => {
    // Both messages arrive within the window (sent together); each needs about 7 MB of the 8 MB budget.
    const r = await relay({ graph: { uploadBudget: '8MB', uploadBudgetWindow: '10s' } });
    const files = [];
    for (let i = 0; i < 2; i++) {
      const blob = await randomFile(5 * MB);
      files.push(await composeToFile({ from: UPN, to: 'joerg@contoso.example', subject: `Budget ${i}`, text: 'x', attachments: [{ filename: `b${i}.bin`, path: blob.path }] }));
    }
    await Promise.all(files.map((f) => sendFile(r.smtpPort, UPN, ['joerg@contoso.example'], f)));
    const deferred = await r.waitForLog((l) => l.event === 'deferred');
    expect(deferred.reason).toBe('upload-budget');
    expect(deferred.status).toBeUndefined(); // decided locally, before any Graph call
    await r.waitForLogs(delivered, 2, 30_000);
    expect(tb.emu.sentDrafts).toHaveLength(2);
    expect(tb.emu.drafts(UPN)).toEqual([]);
  });
});

describe('size limits', () => {
  it('accepts up to limits.maxMessageSize and answers 552 5.3.4 above it', async () => {
    const r = await relay({ limits: { maxMessageSize: '6MB' } });
    const c = await RawSmtp.connect(r.smtpPort);
    await c.reply();
    const ehlo = await c.cmd('EHLO client.test');
    expect(ehlo.text).toContain(`SIZE ${6 * MB}`);
    expect((await c.cmd(`MAIL FROM:<${UPN}> SIZE=${7 * MB}`)).text).toMatch(/^552 5\.3\.4 /);
    c.close();
    const ok = await randomFile(4 * MB); // 5.5 MB once base64-encoded: over one request, under the limit
    await sendFile(r.smtpPort, UPN, ['joerg@contoso.example'], await composeToFile({ from: UPN, to: 'joerg@contoso.example', subject: 'fits', attachments: [{ path: ok.path, filename: 'ok.bin' }] }));
    expect((await r.waitForLog(delivered)).route).toBe('large');
  });

  it('with delivery.largeMessages false keeps the limit at what one sendMail request carries', async () => {
    const r = await relay({ delivery: { largeMessages: false } });
    const c = await RawSmtp.connect(r.smtpPort);
    await c.reply();
    const size = Number(/SIZE (\d+)/.exec((await c.cmd('EHLO client.test')).text)?.[1]);
    expect(size).toBeLessThan(3 * MB);
    c.close();
  });
});

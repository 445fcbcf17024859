/** Issue 4: Sent Items control — discard sends JSON sendMail with saveToSentItems false, built field by field from the MIME. */

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { useTestbed } from '../helpers/graph-relay.js';
import { composeToFile, randomFile, sendFile, sha256 } from '../helpers/large-mail.js';
import type { LogLine } from '../helpers/relay-process.js';

const tb = useTestbed();
const relay = tb.relay.bind(tb);

const delivered = (l: LogLine): boolean => l.event === 'delivered';

type Json = Record<string, any>;
const addresses = (list: Json[] | undefined): string[] => (list ?? []).map((r) => r.emailAddress.address as string).sort();

describe('sentItems: discard', () => {
  it('sends JSON sendMail with saveToSentItems false and every field taken from the MIME', async () => {
    const r = await relay({ mailboxes: { map: { '@printer.local': { mailbox: 'scans@contoso.example', sentItems: 'discard' } } } });
    const logo = randomBytes(3000);
    const pdf = randomBytes(200_000);
    const inner = Buffer.from('From: a@fabrikam.example\r\nTo: b@fabrikam.example\r\nSubject: inner\r\n\r\ninner body\r\n');
    const file = await composeToFile({
      from: 'Scanner Büro <mfp@printer.local>',
      to: 'Jörg <joerg@contoso.example>',
      cc: 'carol@contoso.example',
      replyTo: 'helpdesk@contoso.example',
      subject: 'Rechnung Nr. 7 – Grüße ✓',
      text: 'plain version',
      html: '<p>Grüße <img src="cid:logo@mfp"></p>',
      headers: { 'X-Priority': '1 (Highest)', 'X-Scanner-Id': 'MFP-7', 'Disposition-Notification-To': 'mfp@printer.local', 'Keywords': 'not-an-x-header' },
      attachments: [
        { filename: 'Rechnung März €.pdf', content: pdf, contentType: 'application/pdf' },
        { filename: 'logo.png', content: logo, cid: 'logo@mfp', contentType: 'image/png' },
        { filename: 'vorgang.eml', content: inner, contentType: 'message/rfc822' },
      ],
    });
    await sendFile(r.smtpPort, 'mfp@printer.local', ['joerg@contoso.example', 'carol@contoso.example', 'audit@contoso.example'], file);
    const [sent] = await tb.emu.waitForSent(1);
    expect((await r.waitForLog(delivered)).route).toBe('json');
    expect(sent!.via).toBe('sendMail');
    expect(sent!.upn).toBe('scans@contoso.example');
    expect(sent!.contentType).toBe('application/json');
    const body = sent!.json as Json;
    expect(body.saveToSentItems).toBe(false);
    const m = body.message as Json;
    expect(m.subject).toBe('Rechnung Nr. 7 – Grüße ✓');
    expect(m.body).toEqual({ contentType: 'html', content: '<p>Grüße <img src="cid:logo@mfp"></p>' });
    // The device's From became the sending mailbox (Exchange refuses any other), its name kept.
    expect(m.from).toEqual({ emailAddress: { address: 'scans@contoso.example', name: 'Scanner Büro' } });
    expect(addresses(m.replyTo)).toEqual(['helpdesk@contoso.example']);
    expect(m.toRecipients).toEqual([{ emailAddress: { address: 'joerg@contoso.example', name: 'Jörg' } }]);
    expect(addresses(m.ccRecipients)).toEqual(['carol@contoso.example']);
    expect(addresses(m.bccRecipients)).toEqual(['audit@contoso.example']); // envelope-only recipient
    expect(m.importance).toBe('high');
    expect(m.isReadReceiptRequested).toBe(true);
    // Only x- headers (nodemailer writes the name as X-Scanner-ID); Keywords is not one, X-Priority became importance.
    expect((m.internetMessageHeaders as Json[]).map((h) => [String(h.name).toLowerCase(), h.value])).toEqual([
      ['x-scanner-id', 'MFP-7'],
      ['x-original-from', '=?UTF-8?Q?Scanner_B=C3=BCro?= <mfp@printer.local>'],
    ]);
    const atts = m.attachments as Json[];
    expect(atts).toHaveLength(3);
    for (const a of atts) expect(a['@odata.type']).toBe('#microsoft.graph.fileAttachment');
    const byName = (n: string): Json => atts.find((a) => a.name === n)!;
    expect(byName('Rechnung März €.pdf')).toMatchObject({ contentType: 'application/pdf', isInline: false });
    expect(sha256(Buffer.from(byName('Rechnung März €.pdf').contentBytes, 'base64'))).toBe(sha256(pdf));
    expect(byName('logo.png')).toMatchObject({ contentType: 'image/png', isInline: true, contentId: 'logo@mfp' });
    expect(sha256(Buffer.from(byName('logo.png').contentBytes, 'base64'))).toBe(sha256(logo));
    expect(byName('vorgang.eml')).toMatchObject({ contentType: 'message/rfc822', isInline: false });
    expect(sha256(Buffer.from(byName('vorgang.eml').contentBytes, 'base64'))).toBe(sha256(inner));
  });

  it('applies delivery.sentItems globally, a mapping overrides it, and plain string mappings still work', async () => {
    const r = await relay({
      delivery: { sentItems: 'discard' },
      mailboxes: { map: { 'copier@printer.local': 'copier@contoso.example', '@keep.local': { mailbox: 'keeper@contoso.example', sentItems: 'keep' } } },
    });
    const plain = await composeToFile({ from: 'copier@printer.local', to: 'joerg@contoso.example', subject: 'global discard', text: 'a' });
    const kept = await composeToFile({ from: 'x@keep.local', to: 'joerg@contoso.example', subject: 'kept', text: 'b' });
    await sendFile(r.smtpPort, 'copier@printer.local', ['joerg@contoso.example'], plain);
    await sendFile(r.smtpPort, 'x@keep.local', ['joerg@contoso.example'], kept);
    const sent = await tb.emu.waitForSent(2);
    const copier = sent.find((s) => s.upn === 'copier@contoso.example')!;
    const keeper = sent.find((s) => s.upn === 'keeper@contoso.example')!;
    expect(copier.contentType).toBe('application/json');
    expect((copier.json as Json).saveToSentItems).toBe(false);
    // A one-part message's body runs to the end of the data, its final line break included.
    expect((copier.json as Json).message.body).toEqual({ contentType: 'text', content: 'a\n' });
    expect(keeper.contentType).toBe('text/plain'); // MIME sendMail: Graph keeps the copy
  });

  it('a large message with discard goes through a draft (which Graph saves) and says so in the log', async () => {
    const r = await relay({ delivery: { sentItems: 'discard' } });
    const big = await randomFile(4 * 1024 * 1024);
    const file = await composeToFile({ from: 'alice@contoso.example', to: 'joerg@contoso.example', subject: 'big', text: 'x', attachments: [{ filename: 'big.bin', path: big.path }] });
    await sendFile(r.smtpPort, 'alice@contoso.example', ['joerg@contoso.example'], file);
    const warn = await r.waitForLog((l) => l.event === 'sent-items-kept');
    expect(warn.msg).toMatch(/too big for JSON sendMail/);
    expect((await r.waitForLog(delivered)).route).toBe('large');
    expect(tb.emu.sentDrafts).toHaveLength(1);
  });
});

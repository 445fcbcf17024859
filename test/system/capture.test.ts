/** Capture mode shows what graph mode would do: the route, its permission, every Graph request, the recipients, and why. */

import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { afterEach, describe, expect, it } from 'vitest';
import { message } from '../helpers/graph-relay.js';
import { composeToFile, randomFile, sendFile } from '../helpers/large-mail.js';
import { startInProcess } from '../helpers/relay-in-process.js';
import type { LogLine, RelayProcess } from '../helpers/relay-process.js';
import { pySend } from '../helpers/smtp-clients.js';

const MB = 1024 * 1024;
const UPLOAD_CHUNK = 12 * 320 * 1024;
const USERS = '/v1.0/users/scans%40contoso.example';

const relays: RelayProcess[] = [];
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.kill()));
});

async function captureRelay(extra: Record<string, unknown> = {}): Promise<RelayProcess> {
  const r = await startInProcess({ config: { delivery: { mode: 'capture' }, mailboxes: { fallback: 'scans@contoso.example', senderDomains: ['contoso.example'] }, ...extra } });
  relays.push(r);
  return r;
}

type Json = Record<string, any>;
const done = (l: LogLine): boolean => l.event === 'delivered' || l.event === 'dead-lettered';
const read = (r: RelayProcess, name: string): Buffer => readFileSync(path.join(r.captureDir, name));
const record = (r: RelayProcess, qid: string): Json => JSON.parse(read(r, `${qid}.json`).toString('utf8'));

describe('capture mode', () => {
  it('a small message: MIME sendMail, Mail.Send, one request, and the recipients with the envelope-only Bcc', async () => {
    const r = await captureRelay();
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: r.smtpPort, secure: false, ignoreTLS: true });
    try {
      await transport.sendMail({
        from: 'scanner@printer.local',
        to: 'Alice <alice@contoso.example>',
        cc: 'carol@contoso.example',
        subject: 'Scan 1',
        text: 'PDF would be here',
        envelope: { from: 'scanner@printer.local', to: ['alice@contoso.example', 'carol@contoso.example', 'audit@contoso.example'] },
      });
    } finally {
      transport.close();
    }
    const { qid } = await r.waitForLog(done);
    expect(readdirSync(r.captureDir).sort()).toEqual([`${qid}.eml`, `${qid}.json`]);
    const eml = read(r, `${qid}.eml`);
    expect(eml.toString('latin1')).toMatch(/^Bcc: audit@contoso\.example\r\nReceived: /);
    const rec = record(r, String(qid));
    expect(rec).toMatchObject({ route: 'mime', permission: ['Mail.Send'], recipients: { to: ['alice@contoso.example'], cc: ['carol@contoso.example'], bcc: ['audit@contoso.example'] } });
    expect(rec.reason).toMatch(/^fits one MIME sendMail request \(\d+ of \d+ bytes as base64\)$/);
    const length = Math.ceil(eml.length / 3) * 4;
    expect(rec.requests).toEqual([{ step: 'sendMail', method: 'POST', path: `${USERS}/sendMail`, contentType: 'text/plain', bodyBytes: length }]);
    expect(rec.request).toEqual({ method: 'POST', url: `https://graph.microsoft.com${USERS}/sendMail`, headers: { 'Content-Type': 'text/plain', 'Content-Length': length }, body: `base64 of ${qid}.eml (${eml.length} bytes)` });
  });

  it('a 7 MB scan: the large route with Mail.ReadWrite, a draft, an upload session in chunks, and the send', async () => {
    const r = await captureRelay();
    const pdf = await randomFile(7 * MB);
    const file = await composeToFile({ from: 'scanner@printer.local', to: 'joerg@contoso.example', subject: 'Big scan', text: 'attached', attachments: [{ filename: 'scan.pdf', path: pdf.path, contentType: 'application/pdf' }] });
    await sendFile(r.smtpPort, 'scanner@printer.local', ['joerg@contoso.example', 'audit@contoso.example'], file);
    const { qid, route } = await r.waitForLog(done);
    expect(route).toBe('capture');
    const eml = read(r, `${qid}.eml`);
    const original = readFileSync(file);
    // prefix + Received: + the header section (its From rewritten to the mailbox) + the body as sent
    const body = (b: Buffer): Buffer => b.subarray(b.indexOf('\r\n\r\n'));
    expect(body(eml).equals(body(original))).toBe(true);
    const rec = record(r, String(qid));
    expect(rec).toMatchObject({ route: 'large', permission: ['Mail.Send', 'Mail.ReadWrite'], draft: 'mime', recipients: { to: ['joerg@contoso.example'], cc: [], bcc: ['audit@contoso.example'] } });
    expect(rec.reason).toMatch(/^over graph\.maxRequestBytes as one MIME sendMail .*: a draft from the MIME less 1 attachment\(s\), each uploaded to it, then sent$/);
    expect(rec.attachments).toEqual([{ name: 'scan.pdf', contentType: 'application/pdf', isInline: false, contentId: null, bytes: 7 * MB }]);
    const requests = rec.requests as Json[];
    expect(requests.map((q) => [q.step, q.method, q.path])).toEqual([
      ['createDraft', 'POST', `${USERS}/messages`],
      ['createUploadSession', 'POST', `${USERS}/messages/{draft-id}/attachments/createUploadSession`],
      ['uploadChunk', 'PUT', '{uploadUrl}'],
      ['uploadChunk', 'PUT', '{uploadUrl}'],
      ['sendDraft', 'POST', `${USERS}/messages/{draft-id}/send`],
    ]);
    expect(requests.filter((q) => q.step === 'uploadChunk').map((q) => q.contentRange)).toEqual([`bytes 0-${UPLOAD_CHUNK - 1}/${7 * MB}`, `bytes ${UPLOAD_CHUNK}-${7 * MB - 1}/${7 * MB}`]);
    // The draft is the MIME less the PDF: far smaller than the message, within one request.
    expect(requests[0]!.bodyBytes).toBeLessThan(64 * 1024);
    expect(rec.request).toMatchObject({ method: 'POST', url: `https://graph.microsoft.com${USERS}/messages`, headers: { 'Content-Type': 'text/plain' }, then: '4 more request(s): see requests' });
    expect(rec.request.url).not.toMatch(/sendMail/);
  });

  it('a mailbox mapped with sentItems discard: JSON sendMail, its body written beside the record', async () => {
    const r = await captureRelay({ mailboxes: { map: { '@printer.local': { mailbox: 'scans@contoso.example', sentItems: 'discard' } } } });
    const msg = message({ From: 'Scanner <mfp@printer.local>', To: 'alice@contoso.example', Subject: 'Scan 2' }, 'scan text\r\n');
    expect((await pySend(r.smtpPort, 'mfp@printer.local', ['alice@contoso.example', 'audit@contoso.example'], msg)).ok).toBe(true);
    const { qid } = await r.waitForLog(done);
    expect(readdirSync(r.captureDir).sort()).toEqual([`${qid}.eml`, `${qid}.json`, `${qid}.request.json`]);
    const body = read(r, `${qid}.request.json`);
    const json = JSON.parse(body.toString('utf8'));
    expect(json).toMatchObject({ saveToSentItems: false, message: { subject: 'Scan 2', body: { contentType: 'text', content: 'scan text\n' } } });
    const rec = record(r, String(qid));
    expect(rec).toMatchObject({
      route: 'json',
      permission: ['Mail.Send'],
      reason: 'sentItems is discard: JSON sendMail with saveToSentItems false',
      recipients: { to: ['alice@contoso.example'], cc: [], bcc: ['audit@contoso.example'] },
      request: { method: 'POST', url: `https://graph.microsoft.com${USERS}/sendMail`, headers: { 'Content-Type': 'application/json', 'Content-Length': body.length }, body: `${qid}.request.json (${body.length} bytes)` },
      envelope: { mailFrom: 'mfp@printer.local', rcptTo: ['alice@contoso.example', 'audit@contoso.example'] },
    });
    expect(rec.requests).toEqual([{ step: 'sendMail', method: 'POST', path: `${USERS}/sendMail`, contentType: 'application/json', bodyBytes: body.length }]);
  });

  it('refuses what graph mode would refuse, and says why: an invitation only a JSON draft could carry', async () => {
    const r = await captureRelay({ graph: { maxRequestBytes: '100KB' } });
    const file = await composeToFile({
      from: 'booking@contoso.example',
      to: 'joerg@contoso.example',
      subject: 'Room booking',
      text: 'agenda '.repeat(13_000),
      icalEvent: { method: 'REQUEST', content: 'BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n' },
    });
    await sendFile(r.smtpPort, 'booking@contoso.example', ['joerg@contoso.example'], file);
    const dead = await r.waitForLog(done);
    expect(dead).toMatchObject({ event: 'dead-lettered', reason: 'message-too-big' });
    const rec = record(r, String(dead.qid));
    expect(rec).toMatchObject({ route: 'large', permission: [], requests: [], request: null, refused: { reason: 'message-too-big' } });
    expect(rec.refused.message).toMatch(/calendar invitation .*method=REQUEST/);
  });
});

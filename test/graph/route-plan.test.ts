/** planRoute: which route a spooled message takes, the permission it needs, the requests it makes, and why. */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { base64Length, bccHeader } from '../../src/mime/compose.js';
import { uploadSessionItem } from '../../src/mime/mime-attachments.js';
import { decodedSize } from '../../src/mime/part-body.js';
import { UPLOAD_CHUNK } from '../../src/graph/planned-requests.js';
import { planRoute, type RouteInput, type RouteLimits } from '../../src/graph/route-plan.js';

const dir = mkdtempSync(path.join(tmpdir(), 'route-plan-'));
let n = 0;
const KB = 1024;
const MB = 1024 * KB;

/** A spool-like file: the message, then bytes that are not part of it (the envelope trailer). */
function input(message: string | Buffer, opts: Partial<RouteInput> = {}): RouteInput {
  const file = path.join(dir, `m${n++}.msg`);
  const bytes = Buffer.from(message);
  writeFileSync(file, Buffer.concat([bytes, Buffer.from('\n{"envelope":"not part of the message"}\n')]));
  const bcc = opts.bcc ?? ['audit@contoso.example'];
  return { mailbox: 'scans@contoso.example', bcc, prefix: Buffer.from(bccHeader(bcc)), data: { file, size: bytes.length }, sentItems: 'keep', ...opts };
}

const limits = (extra: Partial<RouteLimits> = {}): RouteLimits => ({ maxRequestBytes: 4 * MB, largeMessages: true, measure: decodedSize, ...extra });
const b64 = (b: Buffer): string => b.toString('base64').replace(/.{76}/g, '$&\r\n');

function multipart(parts: string[]): string {
  const head = 'From: scanner@contoso.example\r\nTo: joerg@contoso.example\r\nSubject: plan\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n';
  return `${head}${parts.map((p) => `--b\r\n${p}\r\n`).join('')}--b--\r\n`;
}
const text = (body: string): string => `Content-Type: text/plain; charset=utf-8\r\n\r\n${body}`;
const pdf = (name: string, bytes: Buffer): string => `Content-Type: application/pdf; name="${name}"\r\nContent-Disposition: attachment; filename="${name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64(bytes)}`;
const invite = (body = 'BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR'): string => `Content-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\r\n${body}`;

describe('planRoute', () => {
  it('sends a message that fits one request as MIME sendMail, with Mail.Send only', async () => {
    const msg = input(multipart([text('hello')]));
    const { plan, work } = await planRoute(msg, limits());
    expect(work.route).toBe('mime');
    expect(plan).toMatchObject({ route: 'mime', permission: ['Mail.Send'] });
    expect(plan.requests).toEqual([{ step: 'sendMail', method: 'POST', path: '/v1.0/users/scans%40contoso.example/sendMail', contentType: 'text/plain', bodyBytes: base64Length(msg.prefix.length + msg.data.size) }]);
    expect(plan.reason).toMatch(/^fits one MIME sendMail request/);
    expect(plan.sentItemsKept).toBeUndefined();
  });

  it('sends JSON sendMail for a mailbox that discards Sent Items, and says so', async () => {
    const { plan, work } = await planRoute(input(multipart([text('hello')]), { sentItems: 'discard' }), limits());
    expect(plan).toMatchObject({ route: 'json', permission: ['Mail.Send'], reason: 'sentItems is discard: JSON sendMail with saveToSentItems false' });
    if (work.route !== 'json') throw new Error(`expected the JSON route, got ${work.route}`);
    expect(plan.requests).toEqual([{ step: 'sendMail', method: 'POST', path: '/v1.0/users/scans%40contoso.example/sendMail', contentType: 'application/json', bodyBytes: work.body.length }]);
    const body = JSON.parse(work.body.toString('utf8'));
    expect(body.saveToSentItems).toBe(false);
    expect(body.message.bccRecipients).toEqual([{ emailAddress: { address: 'audit@contoso.example' } }]);
  });

  it('keeps a calendar invitation MIME even when the mailbox discards Sent Items', async () => {
    const { plan } = await planRoute(input(multipart([text('see invite'), invite()]), { sentItems: 'discard' }), limits());
    expect(plan).toMatchObject({ route: 'mime', sentItemsKept: 'calendar', permission: ['Mail.Send'] });
    expect(plan.reason).toMatch(/calendar invitation.*plain \.ics attachment/);
  });

  it('says when discard cannot be honoured because the message is too big for JSON', async () => {
    const { plan } = await planRoute(input(multipart([text('x'), pdf('a.pdf', randomBytes(100 * KB))]), { sentItems: 'discard' }), limits({ maxRequestBytes: 64 * KB }));
    expect(plan).toMatchObject({ route: 'large', sentItemsKept: 'too-big-for-json' });
    expect(plan.reason).toMatch(/^sentItems is discard, but the message is too big for JSON sendMail/);
  });

  it('plans a draft from the cut MIME, an upload session in UPLOAD_CHUNK pieces and the send, with Mail.ReadWrite', async () => {
    const big = randomBytes(7 * MB + 5);
    const small = randomBytes(200 * KB);
    const msg = input(multipart([text('two attachments'), pdf('big.pdf', big), pdf('small.pdf', small)]));
    const { plan, work } = await planRoute(msg, limits({ maxRequestBytes: 1 * MB }));
    expect(plan).toMatchObject({ route: 'large', permission: ['Mail.Send', 'Mail.ReadWrite'], draft: 'mime' });
    expect(plan.reason).toMatch(/^over graph\.maxRequestBytes as one MIME sendMail \(\d+ > 1048576 bytes as base64\): a draft from the MIME less 1 attachment\(s\)/);
    if (work.route !== 'large' || work.large.draft.kind !== 'mime') throw new Error('expected a MIME draft');
    const users = '/v1.0/users/scans%40contoso.example';
    const item = Buffer.byteLength(JSON.stringify(uploadSessionItem(work.large.attachments[0]!, big.length)));
    expect(plan.requests).toEqual([
      { step: 'createDraft', method: 'POST', path: `${users}/messages`, contentType: 'text/plain', bodyBytes: work.large.draft.bytes },
      { step: 'createUploadSession', method: 'POST', path: `${users}/messages/{draft-id}/attachments/createUploadSession`, contentType: 'application/json', bodyBytes: item, attachment: 'big.pdf' },
      { step: 'uploadChunk', method: 'PUT', path: '{uploadUrl}', contentType: 'application/octet-stream', bodyBytes: UPLOAD_CHUNK, attachment: 'big.pdf', contentRange: `bytes 0-${UPLOAD_CHUNK - 1}/${big.length}` },
      { step: 'uploadChunk', method: 'PUT', path: '{uploadUrl}', contentType: 'application/octet-stream', bodyBytes: big.length - UPLOAD_CHUNK, attachment: 'big.pdf', contentRange: `bytes ${UPLOAD_CHUNK}-${big.length - 1}/${big.length}` },
      { step: 'sendDraft', method: 'POST', path: `${users}/messages/{draft-id}/send`, contentType: null, bodyBytes: 0 },
    ]);
    expect(plan.attachments).toEqual([{ name: 'big.pdf', contentType: 'application/pdf', isInline: false, contentId: null, bytes: big.length }]);
    // The small attachment stays in the draft's MIME; the draft fits one request.
    expect(work.large.draft.bytes).toBeLessThanOrEqual(1 * MB);
  });

  it('posts an attachment under 3 MB directly, and lists no attachment requests when it does not measure', async () => {
    const msg = input(multipart([text('x'), pdf('a.pdf', randomBytes(300 * KB))]));
    const measured = await planRoute(msg, limits({ maxRequestBytes: 64 * KB }));
    expect(measured.plan.requests.map((r) => r.step)).toEqual(['createDraft', 'addAttachment', 'sendDraft']);
    const att = measured.plan.requests[1]!;
    // The fileAttachment JSON: its fields, then 300 KB as base64.
    expect(att.bodyBytes).toBeGreaterThan(base64Length(300 * KB));
    expect(att.bodyBytes).toBeLessThan(base64Length(300 * KB) + 200);
    const unmeasured = await planRoute(msg, limits({ maxRequestBytes: 64 * KB, measure: undefined }));
    expect(unmeasured.plan.requests.map((r) => r.step)).toEqual(['createDraft', 'sendDraft']);
    expect(unmeasured.plan.attachments).toEqual([{ name: 'a.pdf', contentType: 'application/pdf', isInline: false, contentId: null, bytes: null }]);
  });

  it('never cuts a calendar invitation out of the draft, even when it is the biggest part', async () => {
    const ics = `BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nX-PADDING:${'p'.repeat(30 * KB)}\r\nEND:VCALENDAR`;
    const { plan, work } = await planRoute(input(multipart([text('x'), invite(ics), pdf('a.pdf', randomBytes(20 * KB))])), limits({ maxRequestBytes: 64 * KB }));
    expect(plan).toMatchObject({ route: 'large', draft: 'mime' });
    if (work.route !== 'large') throw new Error('expected the large route');
    expect(work.large.attachments.map((a) => a.name)).toEqual(['a.pdf']);
  });

  it('refuses an invitation that only a JSON draft could carry', async () => {
    // The text body cannot be cut, and as base64 the rest is over the limit; as JSON it would fit.
    const msg = input(multipart([text('t'.repeat(90 * KB)), invite(), pdf('a.pdf', randomBytes(20 * KB))]));
    const { plan, work } = await planRoute(msg, limits({ maxRequestBytes: 100 * KB }));
    expect(work.route).toBe('refused');
    expect(plan).toMatchObject({ route: 'large', permission: [], requests: [], refused: { reason: 'message-too-big' } });
    expect(plan.refused!.message).toMatch(/calendar invitation \(attachment-1\.ics, text\/calendar; method=REQUEST\).*plain \.ics attachment, so the message is not sent/);
    // The same message without the invitation goes as a JSON draft.
    const plain = await planRoute(input(multipart([text('t'.repeat(90 * KB)), pdf('a.pdf', randomBytes(20 * KB))])), limits({ maxRequestBytes: 100 * KB }));
    expect(plain.plan).toMatchObject({ route: 'large', draft: 'json' });
  });

  it('refuses a message over one request when delivery.largeMessages is off, and one it cannot split', async () => {
    const over = await planRoute(input(multipart([text('x'), pdf('a.pdf', randomBytes(100 * KB))])), limits({ maxRequestBytes: 64 * KB, largeMessages: false }));
    expect(over.plan).toMatchObject({ route: 'mime', refused: { reason: 'message-too-big' } });
    expect(over.plan.refused!.message).toMatch(/exceeds one Graph request and delivery\.largeMessages is off$/);
    const hostile = await planRoute(input(`X-Long: ${'a'.repeat(1100 * KB)}\r\n\r\nbody\r\n`), limits({ maxRequestBytes: 64 * KB }));
    expect(hostile.plan).toMatchObject({ route: 'large', refused: { reason: 'invalid-mime' } });
    expect(hostile.plan.refused!.message).toMatch(/^cannot split the message into parts: a header line exceeds 1 MB/);
  });
});

/** POST /users/{upn}/sendMail (MIME as base64 text/plain, or JSON) and the recipient checks Graph applies. */
import { createHash } from 'node:crypto';
import { decodeStrictBase64 } from './base64.js';
import { GraphError, isObject, parseJsonObject } from './call.js';
import type { GraphCall, Reply } from './call.js';
import { mediaType } from './http.js';
import type { SentRecord } from './types.js';
import type { EmulatorState } from './state.js';
import { randomUUID } from 'node:crypto';
import addressparser from 'nodemailer/lib/addressparser';
import libmime from 'libmime';

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

export function decodeMimeBody(body: Buffer): Buffer {
  const mime = decodeStrictBase64(body);
  if (!mime) throw new GraphError(400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.');
  return mime;
}

/** Exchange Online's limit on a message's header section (its service description: 256 KB). */
export const MAX_HEADER_SECTION = 256 * 1024;

/**
 * The whole header section (up to the first empty line), as bytes: Exchange reads all of it, so the
 * emulator does too. Over MAX_HEADER_SECTION the message is refused, as Exchange refuses it.
 */
export function headerSection(mime: Buffer): Buffer {
  const crlf = mime.indexOf('\r\n\r\n');
  const lf = mime.indexOf('\n\n');
  let end = crlf === -1 ? lf : lf === -1 ? crlf : Math.min(crlf, lf);
  if (mime.subarray(0, 2).toString('latin1') === '\r\n' || mime[0] === 0x0a) end = 0;
  const head = end === -1 ? mime : mime.subarray(0, end);
  if (head.length > MAX_HEADER_SECTION) {
    throw new GraphError(400, 'ErrorMessageSizeExceeded', `The message header exceeds the maximum supported size (${head.length} bytes; the limit is ${MAX_HEADER_SECTION}).`);
  }
  return head;
}

/** Header fields, unfolded, in order: [lower-case name, value decoded as UTF-8]. */
export function headerFields(mime: Buffer): [string, string][] {
  const text = headerSection(mime).toString('utf8').replace(/\r?\n[ \t]/g, ' ');
  const out: [string, string][] = [];
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) out.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return out;
}

export function mimeHeader(mime: Buffer, name: string): string | undefined {
  const lower = name.toLowerCase();
  return headerFields(mime).find(([n]) => n === lower)?.[1];
}

/** The mailboxes of an address header, groups flattened, each with its display name decoded (RFC 2047). */
export function parseMailboxes(value: string): { name: string; address: string }[] {
  return addressparser(value, { flatten: true }).map((a) => ({ name: libmime.decodeWords(a.name ?? ''), address: a.address ?? '' }));
}

/**
 * Addresses in every To/Cc/Bcc field (all of them, however many). Graph delivers a MIME message to its
 * header recipients only, so a relay must turn envelope-only recipients (Bcc) into a Bcc header; an empty
 * list is what Graph rejects.
 */
export function mimeRecipients(mime: Buffer): string[] {
  const out: string[] = [];
  for (const [name, value] of headerFields(mime)) {
    if (name === 'to' || name === 'cc' || name === 'bcc') for (const m of parseMailboxes(value)) if (m.address) out.push(m.address);
  }
  return out;
}

/**
 * Exchange submits as the mailbox in the URL: a From (or Sender) that is neither the mailbox nor one of
 * the addresses it may send as is refused with ErrorSendAsDenied. Operators report the same for a display
 * name that holds an address, so the emulator refuses that too (stricter, never more lenient).
 */
export function checkSendAs(state: EmulatorState, upn: string, senders: { field: string; name: string; address: string }[]): void {
  const allowed = new Set([upn, ...(state.sendAs.get(upn.toLowerCase()) ?? [])].map((a) => a.toLowerCase()));
  for (const s of senders) {
    if (!allowed.has(s.address.toLowerCase())) {
      throw new GraphError(403, 'ErrorSendAsDenied', `The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message. (${s.field}: ${s.address})`);
    }
    if (s.name.includes('@')) {
      throw new GraphError(403, 'ErrorSendAsDenied', `The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message. (${s.field} display name "${s.name}")`);
    }
  }
}

/** The From and Sender mailboxes of a MIME message. */
export function mimeSenders(mime: Buffer): { field: string; name: string; address: string }[] {
  const out: { field: string; name: string; address: string }[] = [];
  for (const [name, value] of headerFields(mime)) {
    if (name === 'from' || name === 'sender') for (const m of parseMailboxes(value)) out.push({ field: name === 'from' ? 'From' : 'Sender', ...m });
  }
  return out;
}

/** The from and sender of a JSON message resource; absent means the mailbox itself. */
export function jsonSenders(message: Record<string, unknown>): { field: string; name: string; address: string }[] {
  const out: { field: string; name: string; address: string }[] = [];
  for (const field of ['from', 'sender']) {
    const v = message[field];
    const e = isObject(v) && isObject(v['emailAddress']) ? v['emailAddress'] : undefined;
    if (e && typeof e['address'] === 'string') out.push({ field, name: typeof e['name'] === 'string' ? e['name'] : '', address: e['address'] });
  }
  return out;
}

export function jsonRecipients(message: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const field of ['toRecipients', 'ccRecipients', 'bccRecipients']) {
    const list = message[field];
    if (!Array.isArray(list)) continue;
    for (const entry of list) {
      const address = isObject(entry) && isObject(entry['emailAddress']) ? entry['emailAddress']['address'] : undefined;
      if (typeof address === 'string' && address.includes('@')) out.push(address);
    }
  }
  return out;
}

/** What Exchange uses as internetMessageId: the message's own Message-ID, or one it makes up. */
export function internetMessageIdOf(source: { mime?: Buffer; json?: Record<string, unknown> }): string {
  const own = source.mime ? mimeHeader(source.mime, 'Message-ID') : source.json?.['internetMessageId'];
  const m = typeof own === 'string' ? /<[^<>\s]+@[^<>\s]+>/.exec(own) : null;
  return m ? m[0] : `<${randomUUID().replace(/-/g, '').toUpperCase()}@EMULATOR.PROD.OUTLOOK.COM>`;
}

/** The subject a Sent Items copy shows. */
export function subjectOf(source: { mime?: Buffer; json?: Record<string, unknown> }): string {
  const s = source.mime ? mimeHeader(source.mime, 'Subject') : source.json?.['subject'];
  return typeof s === 'string' ? s : '';
}

export function requireRecipients(recipients: string[]): void {
  if (recipients.length === 0) {
    throw new GraphError(400, 'ErrorInvalidRecipients', 'At least one recipient is not valid., Recipient is not resolved. All recipients must be resolved before a message can be submitted.');
  }
}

export function unsupportedMediaType(type: string): GraphError {
  return new GraphError(415, 'UnsupportedMediaType', `Content-Type '${type}' is not supported here; use text/plain (base64 MIME) or application/json.`);
}

export function sendMail(call: GraphCall): Reply {
  const type = mediaType(call.req.headers['content-type']);
  const base = {
    via: 'sendMail' as const,
    upn: call.upn,
    requestId: call.requestId,
    contentType: type,
    at: new Date(),
    headers: call.req.headers,
    ...(call.clientRequestId === undefined ? {} : { clientRequestId: call.clientRequestId }),
  };
  let record: SentRecord;
  let subject: string;
  if (type === 'text/plain') {
    const mime = decodeMimeBody(call.body);
    const recipients = mimeRecipients(mime);
    requireRecipients(recipients);
    checkSendAs(call.state, call.upn, mimeSenders(mime));
    // MIME sendMail always keeps a copy in Sent Items.
    record = { ...base, mime, recipients, size: mime.length, sha256: sha256(mime), internetMessageId: internetMessageIdOf({ mime }), savedToSentItems: true };
    subject = subjectOf({ mime });
  } else if (type === 'application/json') {
    const json = parseJsonObject(call.body);
    const message = json['message'];
    if (!isObject(message)) throw new GraphError(400, 'ErrorInvalidRecipients', "The 'message' property is required.");
    // Stricter, never more lenient: Exchange refuses InternetMessageId on an item sent without being saved
    // (EWS CreateItem SendOnly answers ErrorInvalidPropertySet); on a draft it is writable.
    if (message['internetMessageId'] !== undefined) throw new GraphError(400, 'ErrorInvalidPropertySet', 'The property InternetMessageId cannot be set on a message that is sent without being saved first.');
    const recipients = jsonRecipients(message);
    requireRecipients(recipients);
    checkSendAs(call.state, call.upn, jsonSenders(message));
    record = { ...base, json, recipients, size: call.body.length, sha256: sha256(call.body), internetMessageId: internetMessageIdOf({ json: message }), savedToSentItems: json['saveToSentItems'] !== false };
    subject = subjectOf({ json: message });
  } else {
    throw unsupportedMediaType(type);
  }
  if (call.tenantId) record.tenantId = call.tenantId;
  call.state.recordSent(record, subject);
  return { status: 202 };
}

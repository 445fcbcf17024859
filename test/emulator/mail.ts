/** POST /users/{upn}/sendMail (MIME as base64 text/plain, or JSON) and the recipient checks Graph applies. */
import { createHash } from 'node:crypto';
import { decodeStrictBase64 } from './base64.js';
import { GraphError, isObject, parseJsonObject } from './call.js';
import type { GraphCall, Reply } from './call.js';
import { mediaType } from './http.js';
import type { SentRecord } from './types.js';

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

export function decodeMimeBody(body: Buffer): Buffer {
  const mime = decodeStrictBase64(body);
  if (!mime) throw new GraphError(400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.');
  return mime;
}

/** Header block of a MIME message, unfolded; enough to find the recipient headers. */
function mimeHeaders(mime: Buffer): string {
  const head = mime.subarray(0, Math.min(mime.length, 256 * 1024)).toString('latin1');
  const end = head.search(/\r?\n\r?\n/);
  return (end >= 0 ? head.slice(0, end) : head).replace(/\r?\n[ \t]+/g, ' ');
}

export function mimeHeader(mime: Buffer, name: string): string | undefined {
  const match = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(mimeHeaders(mime));
  return match?.[1]?.trim();
}

/**
 * Addresses in To/Cc/Bcc. Graph delivers a MIME message to its header recipients only, so a relay
 * must turn envelope-only recipients (Bcc) into a Bcc header; an empty list is what Graph rejects.
 */
export function mimeRecipients(mime: Buffer): string[] {
  const out: string[] = [];
  for (const line of mimeHeaders(mime).split(/\r?\n/)) {
    const match = /^(to|cc|bcc):(.*)$/i.exec(line);
    if (match?.[2]) out.push(...(match[2].match(/[^\s<>,;:"()]+@[^\s<>,;:"()]+/g) ?? []));
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
  if (type === 'text/plain') {
    const mime = decodeMimeBody(call.body);
    const recipients = mimeRecipients(mime);
    requireRecipients(recipients);
    record = { ...base, mime, recipients, size: mime.length, sha256: sha256(mime) };
  } else if (type === 'application/json') {
    const json = parseJsonObject(call.body);
    const message = json['message'];
    if (!isObject(message)) throw new GraphError(400, 'ErrorInvalidRecipients', "The 'message' property is required.");
    const recipients = jsonRecipients(message);
    requireRecipients(recipients);
    record = { ...base, json, recipients, size: call.body.length, sha256: sha256(call.body) };
  } else {
    throw unsupportedMediaType(type);
  }
  call.state.recordSent(record);
  return { status: 202 };
}

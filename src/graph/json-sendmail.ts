/** JSON sendMail with saveToSentItems false: the one Graph form that leaves no copy in Sent Items. */

import type { TokenProvider } from '../auth/token-provider.js';
import { AttemptFailed, GraphAttempt, delivered, type Outcome } from './attempt.js';
import type { GraphHttp } from './http.js';
import { sendMailPath } from './planned-requests.js';
import { buildJsonMessage } from './json-message.js';
import { fileAttachment, type MessageParts } from '../mime/mime-attachments.js';
import type { MimePart } from '../mime/mime-tree.js';
import { partToBuffer } from '../mime/part-body.js';

/**
 * The whole request body, attachments included, or null when it would exceed `maxRequestBytes` (the
 * caller then takes another route). Only called for messages whose raw size is at most that limit, so
 * holding it in memory is bounded by one request.
 */
export async function buildJsonSendMail(file: string, root: MimePart, parts: MessageParts, bcc: readonly string[], maxRequestBytes: number): Promise<Buffer | null> {
  const message = await buildJsonMessage(file, root, parts, { extraBcc: bcc, internetMessageId: false });
  const attachments: Record<string, unknown>[] = [];
  let total = Buffer.byteLength(JSON.stringify(message));
  for (const a of parts.attachments) {
    const bytes = await partToBuffer(file, a.part);
    total += Math.ceil(bytes.length / 3) * 4 + 256;
    if (total > maxRequestBytes) return null;
    attachments.push(fileAttachment(a, bytes));
  }
  if (attachments.length) message['attachments'] = attachments;
  const body = Buffer.from(JSON.stringify({ message, saveToSentItems: false }), 'utf8');
  return body.length <= maxRequestBytes ? body : null;
}

/** POST the JSON body built by buildJsonSendMail; one attempt, with the attempt's token handling. */
export async function postJsonSendMail(http: GraphHttp, tokens: TokenProvider, mailbox: string, body: Buffer): Promise<Outcome> {
  const attempt = new GraphAttempt(http, tokens, mailbox);
  try {
    return delivered(await attempt.call('sendMail', { method: 'POST', path: sendMailPath(mailbox), contentType: 'application/json', body: () => body, length: body.length }));
  } catch (err) {
    if (err instanceof AttemptFailed) return err.outcome;
    throw err;
  }
}

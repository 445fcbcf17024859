/** JSON sendMail with saveToSentItems false: the one Graph form that leaves no copy in Sent Items. */

import type { TokenProvider } from '../auth/token-provider.js';
import { TokenError } from '../auth/token-provider.js';
import { classifyNetworkError, classifyResponse, classifyTokenError } from '../delivery/classify.js';
import { GraphNetworkError } from './client.js';
import { buildJsonMessage } from './json-message.js';
import { fileAttachment, type MessageParts } from './mime-attachments.js';
import type { MimePart } from './mime-tree.js';
import { partToBuffer } from './part-body.js';
import type { RouteOutcome } from './large-message.js';
import type { GraphRest } from './rest.js';

/**
 * The whole request body, attachments included, or null when it would exceed `maxRequestBytes` (the
 * caller then takes another route). Only called for messages whose raw size is at most that limit, so
 * holding it in memory is bounded by one request.
 */
export async function buildJsonSendMail(file: string, root: MimePart, parts: MessageParts, bcc: readonly string[], maxRequestBytes: number): Promise<Buffer | null> {
  const message = await buildJsonMessage(file, root, parts, { extraBcc: bcc });
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

export async function postJsonSendMail(rest: GraphRest, tokens: TokenProvider, mailbox: string, body: Buffer): Promise<RouteOutcome> {
  for (let tryNo = 0; ; tryNo++) {
    let token: string;
    try {
      token = await tokens.getToken(tryNo > 0);
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      return { verdict: classifyTokenError(), code: err.errorCode, message: err.message };
    }
    try {
      const res = await rest.call('POST', `/v1.0/users/${encodeURIComponent(mailbox)}/sendMail`, token, 'application/json', body, body.length);
      const verdict = classifyResponse(res);
      if (verdict.kind === 'transient' && verdict.refreshToken && tryNo === 0) continue;
      return { verdict, status: res.status, code: res.error?.code, message: res.error?.message, requestId: res.error?.requestId ?? res.requestId, clientRequestId: res.clientRequestId };
    } catch (err) {
      if (!(err instanceof GraphNetworkError)) throw err;
      // Buffer bodies are handed over whole: a network error after the request went out may have sent the mail.
      return { verdict: classifyNetworkError(err), code: err.code, message: err.message, clientRequestId: err.clientRequestId };
    }
  }
}

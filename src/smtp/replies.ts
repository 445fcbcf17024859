/** How smtp-server sends a reply, as the relay needs it: its own enhanced status codes, and batched writes. */

import type { Socket } from 'node:net';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

const OWN_CODE = /^[245]\.\d{1,3}\.\d{1,3} /;
/**
 * Replies after which the connection changes hands (220: TLS starts) or ends (221, 421): whatever is
 * batched goes out before them, and they go out at once.
 */
const FLUSH_BEFORE = new Set([220, 221, 421]);
let installed = false;

/**
 * One wrapper around SMTPConnection.prototype.send, the single place where smtp-server writes a reply:
 * - smtp-server derives the enhanced code of an application error from the reply code alone (550 is
 *   always 5.1.1), so "550 5.7.1 relay not permitted" cannot be said. Replies whose text already starts
 *   with an enhanced code are sent without a second one; every other reply is left to smtp-server.
 * - smtp-server writes every reply on its own, so a pipelined MAIL, RCPT, DATA costs three socket writes:
 *   the largest single item of ingest CPU in a profile. Replies produced in one tick are corked together
 *   and leave when the tick ends (RFC 2920 section 3.2 allows it; Postfix's smtpd does the same).
 */
export function installReplyPatch(): void {
  if (installed) return;
  installed = true;
  const proto = SMTPConnection.prototype as unknown as { send(code: number, data: unknown, context?: unknown): void };
  const send = proto.send;
  proto.send = function (this: { _socket?: Socket }, code: number, data: unknown, context?: unknown) {
    batchWrites(this._socket, code);
    return send.call(this, code, data, typeof data === 'string' && OWN_CODE.test(data) ? false : context);
  };
}

function batchWrites(socket: Socket | undefined, code: number): void {
  if (!socket || socket.destroyed) return;
  if (FLUSH_BEFORE.has(code)) {
    if (socket.writableCorked) socket.uncork();
  } else if (!socket.writableCorked) {
    socket.cork();
    process.nextTick(uncork, socket);
  }
}

function uncork(socket: Socket): void {
  if (socket.writableCorked) socket.uncork();
}

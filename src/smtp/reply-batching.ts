/** Pipelined replies leave in one write (RFC 2920 section 3.2 allows it; Postfix's smtpd does the same). */

import type { Socket } from 'node:net';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

/**
 * Replies after which the connection changes hands (220: TLS starts) or ends (221, 421): whatever is
 * batched goes out before them, and they go out at once.
 */
const FLUSH_BEFORE = new Set([220, 221, 421]);
let installed = false;

/**
 * smtp-server writes every reply on its own, so a pipelined MAIL, RCPT, DATA costs three writes to the
 * socket: the largest single item of ingest CPU in a profile. Replies produced in one tick are corked
 * together and leave when the tick ends.
 */
export function installReplyBatching(): void {
  if (installed) return;
  installed = true;
  const proto = SMTPConnection.prototype as unknown as { send(code: number, data: unknown, context?: unknown): void };
  const send = proto.send;
  proto.send = function (this: { _socket?: Socket }, code: number, data: unknown, context?: unknown) {
    const socket = this._socket;
    if (socket && !socket.destroyed) {
      if (FLUSH_BEFORE.has(code)) {
        if (socket.writableCorked) socket.uncork();
      } else if (!socket.writableCorked) {
        socket.cork();
        process.nextTick(uncork, socket);
      }
    }
    return send.call(this, code, data, context);
  };
}

function uncork(socket: Socket): void {
  if (socket.writableCorked) socket.uncork();
}

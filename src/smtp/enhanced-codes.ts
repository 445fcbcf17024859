/** Lets the relay choose its own RFC 3463 enhanced status codes in smtp-server replies. */

import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

const OWN_CODE = /^[245]\.\d{1,3}\.\d{1,3} /;
let installed = false;

/**
 * smtp-server derives the enhanced code of an application error from the reply code alone (550 is
 * always 5.1.1), so "550 5.7.1 relay not permitted" cannot be said. Replies whose text already starts
 * with an enhanced code are sent without a second one; every other reply is left to smtp-server.
 */
export function installEnhancedCodePassthrough(): void {
  if (installed) return;
  installed = true;
  const proto = SMTPConnection.prototype as unknown as { send(code: number, data: unknown, context?: unknown): void };
  const send = proto.send;
  proto.send = function (this: unknown, code: number, data: unknown, context?: unknown) {
    if (typeof data === 'string' && OWN_CODE.test(data)) return send.call(this, code, data, false);
    return send.call(this, code, data, context);
  };
}

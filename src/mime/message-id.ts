/** Message-IDs: the one the relay adds when a client sent none, and the form Graph stores (internetMessageId). */

/**
 * The field cleanup adds to a message without a Message-ID, as Postfix's cleanup does: the queue id, the
 * time and the relay's host name make it unique, and every Sent Items look-up then has something to find.
 */
export function newMessageId(queueId: string, ms: number, hostname: string): string {
  return `<${queueId}.${ms}@${hostname}>`;
}

/** msg-id (RFC 5322 section 3.6.4) in the plain form Graph accepts for internetMessageId: no spaces, one @. */
const PLAIN_MSG_ID = /^<[^<>\s@"\\]+@[^<>\s@"\\]+>$/;

/**
 * The Message-ID as Exchange records it in internetMessageId, taken from a header value (surrounding
 * spaces and comments dropped), or null when the value is not a plain `<left@right>`: such an id cannot be
 * set through JSON, and Exchange may replace it, so it is no key to look a message up by.
 */
export function internetMessageId(headerValue: string | null | undefined): string | null {
  if (!headerValue) return null;
  const m = /<[^<>]*>/.exec(headerValue);
  return m && PLAIN_MSG_ID.test(m[0]) ? m[0] : null;
}

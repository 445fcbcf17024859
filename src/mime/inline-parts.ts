/** Which parts the HTML body shows inline: the Content-IDs its cid: URLs (RFC 2392) name. */

import { contentIdKey, describeMessage, messageBodies, type MessageParts } from './mime-attachments.js';
import type { MimePart } from './mime-tree.js';
import { partBody } from './part-body.js';

/** A cid: URL up to the quote, bracket, parenthesis or blank that ends it in HTML or CSS. */
const CID_URL = /cid:([^\s"'<>()]+)/gi;
/** Kept from one chunk for the next, so a cid: URL cut by a chunk boundary is read whole. */
const CARRY = 1024;

/**
 * The Content-IDs the HTML part references, in contentIdKey form. Read as it streams (transfer encoding
 * decoded; latin1 is enough, cid: URLs being ASCII), so a big HTML body is never held.
 */
export async function htmlContentIds(file: string, html: MimePart): Promise<Set<string>> {
  const ids = new Set<string>();
  let carry = '';
  const take = (text: string, final: boolean): void => {
    for (const m of text.matchAll(CID_URL)) {
      // A match that runs to the end may go on in the next chunk: it is read again from the carry.
      if (!final && m.index + m[0].length === text.length) continue;
      ids.add(contentIdKey(decodeUrl(m[1]!)));
    }
  };
  for await (const chunk of partBody(file, html)) {
    const text = carry + chunk.toString('latin1');
    take(text, false);
    carry = text.slice(-CARRY);
  }
  take(carry, true);
  return ids;
}

/** cid: URLs are URL-encoded addr-specs (RFC 2392); one that is not valid percent-encoding is taken as written. */
function decodeUrl(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** describeMessage with the inline flags decided by what the HTML body references. */
export async function readMessageParts(file: string, root: MimePart): Promise<MessageParts> {
  const { html } = messageBodies(root);
  return describeMessage(root, html ? await htmlContentIds(file, html) : new Set());
}

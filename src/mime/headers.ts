/** Reads what ingest needs from a message's header section while its bytes stream to the spool. */

import addressparser from 'nodemailer/lib/addressparser';

/** Headers beyond this size are not examined (the bytes are still spooled whole). */
const MAX_HEADER_BYTES = 1024 * 1024;

/** Collects the header section (up to the first empty line) from streamed chunks. */
export class HeaderCollector {
  private chunks: Buffer[] = [];
  private bytes = 0;
  done = false;

  push(chunk: Buffer): void {
    if (this.done) return;
    const prevTail = this.chunks.length ? this.chunks[this.chunks.length - 1]!.subarray(-3) : Buffer.alloc(0);
    const joined = prevTail.length ? Buffer.concat([prevTail, chunk]) : chunk;
    let end = joined.indexOf('\r\n\r\n');
    let endLen = 4;
    const lf = joined.indexOf('\n\n');
    if (lf !== -1 && (end === -1 || lf < end)) {
      end = lf;
      endLen = 2;
    }
    if (end !== -1) {
      const upto = end + endLen - prevTail.length;
      this.chunks.push(chunk.subarray(0, Math.max(0, upto)));
      this.done = true;
    } else {
      this.chunks.push(chunk);
    }
    this.bytes += chunk.length;
    if (this.bytes > MAX_HEADER_BYTES) this.done = true;
  }

  get block(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export interface HeaderFacts {
  receivedCount: number;
  to: string[];
  cc: string[];
  bcc: string[];
  from: string[];
  messageId: string | null;
}

/** A lone address, bare or in angle brackets after a plain display name: no quotes, comments, groups or lists. */
const SIMPLE_ADDRESS = /^(?:[^"(),:;<>@[\]\\]*<([^\s"(),:;<>@[\]\\]+@[^\s"(),:;<>@[\]\\]+)>|([^\s"(),:;<>@[\]\\]+@[^\s"(),:;<>@[\]\\]+))$/;

/** The addresses of one header value. The common single-address forms skip the full parser (a third of its cost at ingest). */
export function addresses(value: string): string[] {
  const m = SIMPLE_ADDRESS.exec(value);
  if (m) return [(m[1] ?? m[2])!];
  return addressparser(value, { flatten: true })
    .map((a) => a.address)
    .filter((a): a is string => Boolean(a));
}

/**
 * What ingest needs from the headers, without a MIME parser: the body never enters memory here, and a
 * full parse per message cost ~7% of ingest CPU. One pass over the lines, unfolding (RFC 5322 section
 * 2.2.3) only the fields it reads; a field is a name of no whitespace or colon, optional blanks, a colon.
 * Addresses are parsed with nodemailer's addressparser (the one mailparser uses), groups flattened.
 */
export function readHeaderFacts(block: Buffer): HeaderFacts {
  const facts: HeaderFacts = { receivedCount: 0, to: [], cc: [], bcc: [], from: [], messageId: null };
  const text = block.toString('utf8');
  // The field being unfolded: its lower-cased name (null before the first) and its value so far.
  let name: string | null = null;
  let value = '';
  for (let at = 0; at < text.length; ) {
    let nl = text.indexOf('\n', at);
    if (nl === -1) nl = text.length;
    const end = nl > at && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
    const first = text.charCodeAt(at);
    if (first === 32 || first === 9) {
      if (name !== null && READ.has(name)) value += ` ${text.slice(at, end).trim()}`;
    } else {
      // The first colon ends the name, less the blanks before it (no regular expression: its match
      // arrays were most of what this function allocated).
      const colon = text.indexOf(':', at);
      let nameEnd = colon;
      while (nameEnd > at && (text.charCodeAt(nameEnd - 1) === 32 || text.charCodeAt(nameEnd - 1) === 9)) nameEnd--;
      if (colon !== -1 && colon < end && nameEnd > at) {
        const fieldName = text.slice(at, nameEnd);
        if (!WHITESPACE.test(fieldName)) {
          if (name !== null) take(facts, name, value);
          name = fieldName.toLowerCase();
          value = READ.has(name) ? text.slice(colon + 1, end).trim() : '';
        }
      }
    }
    at = nl + 1;
  }
  if (name !== null) take(facts, name, value);
  return facts;
}

const WHITESPACE = /\s/;
/** The fields whose values take() reads. */
const READ = new Set(['to', 'cc', 'bcc', 'from', 'message-id']);

function take(facts: HeaderFacts, name: string, value: string): void {
  switch (name) {
    case 'received':
      facts.receivedCount++;
      break;
    case 'to':
    case 'cc':
    case 'bcc':
    case 'from':
      for (const a of addresses(value)) facts[name].push(a);
      break;
    case 'message-id':
      facts.messageId ??= value;
      break;
  }
}

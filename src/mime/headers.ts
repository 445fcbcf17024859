/** A message's header section: collected from streamed chunks, split into fields over its bytes, read and rewritten. */

import { libmime } from './libmime.js';
import addressparser from 'nodemailer/lib/addressparser';

const CRLF_CRLF = '\r\n\r\n';

/**
 * Collects the header section from streamed (CRLF-clean) chunks: up to the first empty line, or, when there
 * is none within `limit` bytes, up to the end of the line that crosses the limit (the caller then looks for
 * a line that ends the section otherwise, or refuses). Every header-derived decision needs all of it.
 */
export class HeaderCollector {
  private chunks: Buffer[] = [];
  private bytes = 0;
  /** The last three bytes collected; at first a line end, so that a message starting with the empty line has an empty section. */
  private tail: Buffer = Buffer.from('\r\n');
  /** The header fields, each with its CRLF, without the empty line that ends the section; set once known. */
  block: Buffer | null = null;
  /** False when `block` is only the first bytes of a section that had not ended by `limit`. */
  complete = true;

  constructor(private readonly limit: number) {}

  /**
   * Takes the next chunk. Returns the body bytes that follow the section once `block` is set (possibly
   * empty), or null while it is not.
   */
  push(chunk: Buffer): Buffer | null {
    if (this.block) return null;
    // The end may straddle chunks (of any size): search from the last three bytes collected.
    const tail = this.tail;
    const end = findEnd(tail, chunk);
    if (end === -1) {
      const before = this.bytes;
      this.chunks.push(chunk);
      this.bytes += chunk.length;
      this.tail = chunk.length >= 3 ? chunk.subarray(-3) : Buffer.concat([tail, chunk]).subarray(-3);
      if (this.bytes <= this.limit) return null;
      // Past the limit: on to the end of the line that crosses it, and no further, so that what the caller
      // decides (a line that ends the section, or too big) never depends on where the network cut the bytes.
      const nl = chunk.indexOf(0x0a, Math.max(0, this.limit - before));
      if (nl === -1) return null;
      const block = Buffer.concat(this.chunks, this.bytes);
      this.block = block.subarray(0, before + nl + 1);
      this.complete = false;
      this.chunks = [];
      return chunk.subarray(nl + 1);
    }
    const cut = end + 2 - tail.length; // keeps the last field's CRLF
    if (cut >= 0) this.chunks.push(chunk.subarray(0, cut));
    const block = Buffer.concat(this.chunks, this.bytes + Math.max(0, cut));
    this.block = cut < 0 ? block.subarray(0, block.length + cut) : block;
    this.chunks = [];
    return chunk.subarray(cut + 2);
  }

  /** DATA ended before an empty line: everything received is the header section (a message without a body). */
  finish(): Buffer {
    this.block ??= Buffer.concat(this.chunks, this.bytes);
    this.chunks = [];
    return this.block;
  }
}

/**
 * Where CRLF CRLF starts in `tail` + `chunk` (offsets counted from the start of `tail`), or -1. The chunk is
 * searched by itself, and only the few bytes where it meets the tail are joined: copying every chunk behind
 * the tail cost a buffer of the chunk's size per message.
 */
function findEnd(tail: Buffer, chunk: Buffer): number {
  const seam = Buffer.concat([tail, chunk.subarray(0, 3)]).indexOf(CRLF_CRLF, 0, 'latin1');
  if (seam !== -1) return seam;
  const inside = chunk.indexOf(CRLF_CRLF, 0, 'latin1');
  return inside === -1 ? -1 : inside + tail.length;
}

/** One header field: its name as written and its bytes [start, end) in the section, folded lines and CRLF included. */
export interface HeaderField {
  name: string;
  /** Lower-cased name; '' for a line that is not a field (no colon, or a continuation with nothing to continue). */
  key: string;
  start: number;
  end: number;
  /** Offset of the value (after the colon). */
  valueStart: number;
}

/**
 * Splits a header section into fields, in one pass over a latin1 view (one char per byte, so offsets are
 * byte offsets). A field is a name of no whitespace or colon, optional blanks, a colon; lines that start
 * with a blank continue it (RFC 5322 section 2.2.3). LF without CR is read as a line end too.
 */
export function splitFields(block: Buffer): HeaderField[] {
  const text = block.toString('latin1');
  const fields: HeaderField[] = [];
  let current: HeaderField | null = null;
  for (let at = 0; at < text.length; ) {
    let nl = text.indexOf('\n', at);
    nl = nl === -1 ? text.length : nl + 1;
    const first = text.charCodeAt(at);
    if ((first === 32 || first === 9) && current) {
      current.end = nl;
    } else {
      const lineEnd = nl > at && text.charCodeAt(nl - 1) === 10 ? (nl - 1 > at && text.charCodeAt(nl - 2) === 13 ? nl - 2 : nl - 1) : nl;
      const colon = text.indexOf(':', at);
      let nameEnd = colon;
      while (nameEnd > at && (text.charCodeAt(nameEnd - 1) === 32 || text.charCodeAt(nameEnd - 1) === 9)) nameEnd--;
      const name = colon !== -1 && colon < lineEnd && nameEnd > at ? text.slice(at, nameEnd) : '';
      current = name && !WHITESPACE.test(name) ? { name, key: name.toLowerCase(), start: at, end: nl, valueStart: colon + 1 } : { name: '', key: '', start: at, end: nl, valueStart: at };
      fields.push(current);
    }
    at = nl;
  }
  return fields;
}

const WHITESPACE = /\s/;

/** A field's value: unfolded, trimmed, its bytes read as UTF-8 (RFC 6532; 8-bit headers are UTF-8 far more often than not). */
export function fieldValue(block: Buffer, f: HeaderField): string {
  if (!f.key) return '';
  return block
    .toString('utf8', f.valueStart, f.end)
    .replace(/\r?\n(?=[ \t])/g, '')
    .trim();
}

export interface HeaderFacts {
  receivedCount: number;
  to: string[];
  cc: string[];
  bcc: string[];
  from: string[];
  sender: string[];
  /** Whether the message names a Reply-To. */
  replyTo: boolean;
  messageId: string | null;
}

/** What ingest and delivery need from the headers, without a MIME parser (the body never enters memory here). */
export function readHeaderFacts(block: Buffer, fields: readonly HeaderField[] = splitFields(block)): HeaderFacts {
  const facts: HeaderFacts = { receivedCount: 0, to: [], cc: [], bcc: [], from: [], sender: [], replyTo: false, messageId: null };
  for (const f of fields) {
    // A line that is not a field ends the section, as mail parsers (and Postfix's cleanup) read it.
    if (!f.key) break;
    switch (f.key) {
      case 'received':
        facts.receivedCount++;
        break;
      case 'to':
      case 'cc':
      case 'bcc':
      case 'from':
      case 'sender':
        for (const a of addresses(fieldValue(block, f))) facts[f.key].push(a);
        break;
      case 'reply-to':
        facts.replyTo = true;
        break;
      case 'message-id':
        facts.messageId ??= fieldValue(block, f);
        break;
    }
  }
  return facts;
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

/** A lone address with an optional plain display name, as SIMPLE_ADDRESS, keeping the name. */
const SIMPLE_MAILBOX = /^(?:([^"(),:;<>@[\]\\]*)<([^\s"(),:;<>@[\]\\]+@[^\s"(),:;<>@[\]\\]+)>|([^\s"(),:;<>@[\]\\]+@[^\s"(),:;<>@[\]\\]+))$/;

/** The mailboxes of one header value with their display names as written (encoded words not decoded), groups flattened. */
export function mailboxes(value: string): { name: string; address: string }[] {
  // The common forms skip the full parser, as addresses() does: every accepted message reads its From.
  const m = SIMPLE_MAILBOX.exec(value);
  if (m) return m[3] ? [{ name: '', address: m[3] }] : [{ name: m[1]!.trim(), address: m[2]! }];
  return addressparser(value, { flatten: true })
    .filter((a) => Boolean(a.address))
    .map((a) => ({ name: a.name ?? '', address: a.address! }));
}

/** What becomes of a field when the section is rebuilt: removed, replaced by other fields, or followed by more. */
export interface FieldEdit {
  /** Replaces the field (an empty list removes it); absent keeps it as it is. */
  replace?: Buffer[];
  /** Added right after the field (or after its replacement). */
  after?: Buffer[];
}

/** The section with edits applied; untouched fields keep their exact bytes. */
export function rebuild(block: Buffer, fields: readonly HeaderField[], edits: ReadonlyMap<HeaderField, FieldEdit>): Buffer {
  const out: Buffer[] = [];
  for (const f of fields) {
    const e = edits.get(f);
    if (!e) out.push(block.subarray(f.start, f.end));
    else {
      if (e.replace) out.push(...e.replace);
      else out.push(block.subarray(f.start, f.end));
      if (e.after) out.push(...e.after);
    }
  }
  return Buffer.concat(out);
}

/** The field under another name, value bytes (and folding) unchanged: e.g. From → X-Original-From. */
export function renamed(block: Buffer, f: HeaderField, name: string): Buffer {
  return Buffer.concat([Buffer.from(`${name}:`, 'latin1'), block.subarray(f.valueStart, f.end)]);
}

/** A new field from a name and an unfolded value: folded at commas to stay near 78 characters (RFC 5322 section 2.1.1). */
export function newField(name: string, value: string): Buffer {
  let out = `${name}:`;
  let line = out.length;
  const items = value.split(/(?<=,) /);
  for (const item of items) {
    if (line + 1 + item.length > 78 && line > name.length + 1) {
      out += '\r\n';
      line = 0;
    }
    out += ` ${item}`;
    line += item.length + 1;
  }
  return Buffer.from(`${out}\r\n`, 'utf8');
}

const ENCODED_WORDS = /^=\?[^?\s]+\?[bq]\?[^?\s]*\?=(?:\s+=\?[^?\s]+\?[bq]\?[^?\s]*\?=)*$/i;

/**
 * A display name for a header: encoded words kept as they are, other ASCII quoted (RFC 5322 quoted-string),
 * anything else as RFC 2047 encoded words. Controls become spaces: a name can never break the field.
 */
export function formatDisplayName(name: string): string {
  const clean = name.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  if (ENCODED_WORDS.test(clean)) return clean;
  if (/^[\x20-\x7e]*$/.test(clean)) return `"${clean.replace(/["\\]/g, '\\$&')}"`;
  return libmime().encodeWord(clean, 'Q', 52);
}

/** A mailbox for a header: `address`, or `name <address>`. */
export function formatMailbox(name: string, address: string): string {
  return name.trim() ? `${formatDisplayName(name)} <${address}>` : address;
}

/** An RFC 2047 display name decoded; as written when it does not decode. */
export function decodeDisplayName(name: string): string {
  try {
    return libmime().decodeWords(name);
  } catch {
    return name;
  }
}

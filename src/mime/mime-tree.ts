/** Streaming scan of a spooled message into its MIME part tree, with the byte offsets of every part. */

import { isUtf8 } from 'node:buffer';
import { libmime } from './libmime.js';
import { readRange } from './message-file.js';
import { MimeScanError } from '../errors.js';

export interface MimePart {
  /** Offset of the part's opening delimiter line ("--boundary"); 0 for the root. */
  delimStart: number;
  headerStart: number;
  bodyStart: number;
  /** End of the body, before the line break that belongs to the next delimiter. */
  bodyEnd: number;
  /** Start of the next delimiter line (or end of file): removing [delimStart, nextDelimStart) removes the part cleanly. */
  nextDelimStart: number;
  /** The raw header block (latin1, unfolded lines kept as they are). */
  header: string;
  /** Lower-case media type; text/plain when absent (RFC 2045). */
  contentType: string;
  params: Record<string, string>;
  disposition: string | null;
  dispositionParams: Record<string, string>;
  transferEncoding: string;
  contentId: string | null;
  boundary: string | null;
  children: MimePart[];
  parent: MimePart | null;
  /** Set once the part's end is known. */
  ended: boolean;
}

/** The scanner refuses header blocks beyond this: a message like that is malformed or hostile, not a scan. */
const MAX_HEADER_BLOCK = 1024 * 1024;
/** Enough of a body line to compare with a boundary (at most 70 characters, RFC 2046 section 5.1.1). */
const LINE_PEEK = 256;


function headerValue(header: string, name: string): string | null {
  const unfolded = header.replace(/\r?\n[ \t]+/g, ' ');
  const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(unfolded);
  return m ? m[1]!.trim() : null;
}

function newPart(delimStart: number, headerStart: number, parent: MimePart | null): MimePart {
  return {
    delimStart,
    headerStart,
    bodyStart: headerStart,
    bodyEnd: headerStart,
    nextDelimStart: headerStart,
    header: '',
    contentType: 'text/plain',
    params: {},
    disposition: null,
    dispositionParams: {},
    transferEncoding: '7bit',
    contentId: null,
    boundary: null,
    children: [],
    parent,
    ended: false,
  };
}

/** Parameters with RFC 2231 continuations and RFC 2047 words decoded (libmime does both, as mailparser does). */
function decodeParams(parsed: { params: Record<string, string> }): Record<string, string> {
  const decoded = new Set<string>((parsed as { decodedParams?: string[] }).decodedParams ?? []);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed.params)) {
    const key = k.toLowerCase();
    try {
      out[key] = decoded.has(k) ? v : libmime().decodeWords(v);
    } catch {
      out[key] = v;
    }
  }
  return out;
}

/**
 * Header bytes (held as latin1 text) as the client meant them: each line that is valid UTF-8 read as
 * UTF-8 (scanners write raw UTF-8 file names, as RFC 6532 allows), any other line as latin1.
 */
export function headerText(latin1: string): string {
  if (!/[^\x00-\x7f]/.test(latin1)) return latin1;
  return latin1
    .split('\n')
    .map((line) => {
      const bytes = Buffer.from(line, 'latin1');
      return isUtf8(bytes) ? bytes.toString('utf8') : line;
    })
    .join('\n');
}

/** type/subtype made of RFC 2045 tokens: anything else is a Content-Type no reader can trust. */
const MEDIA_TYPE = /^[a-z0-9!#$%&'*+.^_`|~-]+\/[a-z0-9!#$%&'*+.^_`|~-]+$/;

function finishHeader(part: MimePart, header: string): void {
  part.header = header;
  const text = headerText(header);
  const ct = headerValue(text, 'Content-Type');
  if (ct) {
    const parsed = libmime().parseHeaderValue(ct);
    const type = parsed.value.trim().toLowerCase();
    // RFC 2045 section 5.2: a Content-Type that cannot be parsed is taken as the default, text/plain
    // (charset us-ascii), as mail clients do; its parameters mean nothing then.
    part.contentType = MEDIA_TYPE.test(type) ? type : 'text/plain';
    part.params = MEDIA_TYPE.test(type) ? decodeParams(parsed) : {};
  } else if (part.parent?.contentType === 'multipart/digest') {
    part.contentType = 'message/rfc822';
  }
  const cd = headerValue(text, 'Content-Disposition');
  if (cd) {
    const parsed = libmime().parseHeaderValue(cd);
    part.disposition = parsed.value.toLowerCase() || null;
    part.dispositionParams = decodeParams(parsed);
  }
  part.transferEncoding = (headerValue(text, 'Content-Transfer-Encoding') ?? '7bit').toLowerCase();
  const cid = headerValue(text, 'Content-ID');
  part.contentId = cid ? cid.replace(/^<|>$/g, '') : null;
  // Embedded messages are leaves here: an attached .eml travels as one attachment, not as its parts.
  if (part.contentType.startsWith('multipart/') && part.params['boundary']) part.boundary = latin1Boundary(header);
}

/** The boundary as the raw header has it: delimiter lines are compared with it as latin1 text. */
function latin1Boundary(header: string): string | null {
  const params = libmime().parseHeaderValue(headerValue(header, 'Content-Type') ?? '').params;
  const key = Object.keys(params).find((k) => k.toLowerCase() === 'boundary');
  return key ? params[key]! : null;
}

/**
 * Reads the file once, line by line, keeping only header blocks and the first bytes of each body line:
 * memory does not grow with the message. Parts without a closing delimiter end at end of file.
 * It is long because it is one state machine over one stream (header or body, which part, which boundary):
 * split up, its state would have to travel between the pieces on every line.
 */
export async function scanMime(file: string, size: number): Promise<MimePart> {
  const root = newPart(0, 0, null);
  let current: MimePart = root; // the part whose header or body we are in
  let inHeader = true;
  let header = '';
  /** Open multiparts, innermost last. */
  const stack: MimePart[] = [];
  let offset = 0;
  let lineStart = 0;
  let peek = '';
  let full = ''; // whole line, only while in a header
  let prevTermLen = 0; // length of the line break that ended the previous line

  const onLine = (start: number, end: number, termLen: number): void => {
    const content = inHeader ? full : peek;
    const text = content.endsWith('\r') ? content.slice(0, -1) : content;
    if (inHeader && text.startsWith('--') && stack.some((mp) => text.trimEnd() === `--${mp.boundary}` || text.trimEnd() === `--${mp.boundary}--`)) {
      // A part that is all header (no blank line): its header ends here and the line is a delimiter.
      finishHeader(current, header);
      current.bodyStart = start;
      inHeader = false;
      if (current.boundary) stack.push(current);
    }
    if (inHeader) {
      if (text === '') {
        finishHeader(current, header);
        current.bodyStart = end;
        inHeader = false;
        if (current.boundary) stack.push(current);
      } else {
        header += `${text}\r\n`;
        if (header.length > MAX_HEADER_BLOCK) throw new MimeScanError('a header block exceeds 1 MB');
      }
      prevTermLen = termLen;
      return;
    }
    if (text.startsWith('--') && stack.length > 0) {
      const line = text.trimEnd();
      for (let i = stack.length - 1; i >= 0; i--) {
        const mp = stack[i]!;
        const b = `--${mp.boundary}`;
        if (line !== b && line !== `${b}--`) continue;
        // Whatever was open inside mp ends here, before this delimiter's own line break.
        const bodyEnd = Math.max(start - prevTermLen, 0);
        const open = mp.children[mp.children.length - 1];
        if (open) endPart(open, start, bodyEnd);
        stack.length = i + 1;
        if (line === b) {
          const child = newPart(start, end, mp);
          mp.children.push(child);
          current = child;
          inHeader = true;
          header = '';
        } else {
          stack.length = i; // closed: the rest until the parent's next delimiter is epilogue
          current = mp;
        }
        break;
      }
    }
    prevTermLen = termLen;
  };

  let lastByte = -1; // the byte before the current position, across chunks: a CR before LF means CRLF
  for await (const chunk of readRange(file, 0, size)) {
    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(10, pos);
      const stop = nl === -1 ? chunk.length : nl;
      if (inHeader) {
        full += chunk.toString('latin1', pos, stop);
        if (full.length > MAX_HEADER_BLOCK) throw new MimeScanError('a header line exceeds 1 MB');
      } else if (peek.length < LINE_PEEK) {
        peek += chunk.toString('latin1', pos, Math.min(stop, pos + LINE_PEEK - peek.length));
      }
      if (nl === -1) break;
      const end = offset + nl + 1;
      // Judged from the bytes, not the peeked text: a long body line is only peeked at its start.
      const beforeLf = nl > 0 ? chunk[nl - 1] : lastByte;
      onLine(lineStart, end, beforeLf === 13 ? 2 : 1);
      lineStart = end;
      peek = '';
      full = '';
      pos = nl + 1;
    }
    offset += chunk.length;
    if (chunk.length) lastByte = chunk[chunk.length - 1]!;
  }
  if (lineStart < offset || (inHeader && full)) onLine(lineStart, offset, 0);
  if (inHeader) {
    // A message (or part) that is all header.
    finishHeader(current, header);
    current.bodyStart = offset;
  }
  // Everything still open ends at end of file.
  endPart(root, offset, offset);
  return root;
}

/** Ends a part and, when a multipart ends without its close delimiter, its open last child too. */
function endPart(part: MimePart, nextDelimStart: number, bodyEnd: number): void {
  if (part.ended) return;
  part.ended = true;
  part.nextDelimStart = nextDelimStart;
  part.bodyEnd = Math.max(bodyEnd, part.bodyStart);
  const last = part.children[part.children.length - 1];
  if (last) endPart(last, nextDelimStart, bodyEnd);
}

/** All leaves in document order (multipart containers are not leaves; message/rfc822 parts are). */
export function leaves(root: MimePart): MimePart[] {
  if (!root.boundary || root.children.length === 0) return [root];
  return root.children.flatMap(leaves);
}

/** A MIME part's body, read from its byte range in the spool file and decoded (base64, quoted-printable) as it streams. */

import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { MimePart } from './mime-tree.js';
import { readRange } from './message-file.js';

/** Each byte's value in the base64 alphabet; -1 for bytes outside it (line breaks, spaces, '='). */
const B64_VALUE = new Int8Array(256).fill(-1);
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].entries()) B64_VALUE[c.charCodeAt(0)] = i;
const PAD = 0x3d;

/**
 * Base64 in any line layout, decoded byte by byte: bytes outside the alphabet are skipped, '=' ends the
 * data, and the bits of a group cut by a chunk boundary carry over. No strings: decoding through
 * Buffer.from(string, 'base64') made two 256 KB strings per chunk, which a big attachment piled up in
 * the heap faster than the garbage collector freed them.
 */
async function* base64Decode(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let bits = 0; // pending bits in `acc`, always under 8 between bytes
  let acc = 0;
  for await (const chunk of src) {
    const out = Buffer.allocUnsafe(Math.ceil((chunk.length * 3) / 4) + 1);
    let n = 0;
    let ended = false;
    for (let i = 0; i < chunk.length; i++) {
      const v = B64_VALUE[chunk[i]!]!;
      if (v < 0) {
        if (chunk[i] === PAD) {
          ended = true;
          break;
        }
        continue;
      }
      acc = (acc << 6) | v;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out[n++] = acc >> bits;
        acc &= (1 << bits) - 1;
      }
    }
    if (n > 0) yield out.subarray(0, n);
    if (ended) return;
  }
}

const HEX = /^[0-9A-Fa-f]{2}$/;

/** Quoted-printable (RFC 2045 section 6.7), line by line: soft breaks joined, =XX decoded, hard breaks as CRLF. */
async function* qpDecode(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let carry = '';
  const decodeLine = (line: string, hardBreak: boolean): Buffer => {
    let l = line.replace(/[ \t\r]+$/, '');
    let soft = false;
    if (l.endsWith('=')) {
      soft = true;
      l = l.slice(0, -1);
    }
    const out: number[] = [];
    for (let i = 0; i < l.length; i++) {
      const c = l.charCodeAt(i);
      const hex = l.slice(i + 1, i + 3);
      if (c === 61 && HEX.test(hex)) {
        out.push(parseInt(hex, 16));
        i += 2;
      } else out.push(c & 0xff);
    }
    if (hardBreak && !soft) out.push(13, 10);
    return Buffer.from(out);
  };
  for await (const chunk of src) {
    const text = carry + chunk.toString('latin1');
    const lines = text.split('\n');
    carry = lines.pop()!;
    if (lines.length) yield Buffer.concat(lines.map((l) => decodeLine(l, true)));
  }
  if (carry) yield decodeLine(carry, false);
}

/** The decoded body of a leaf part; 7bit, 8bit, binary and unknown encodings pass through unchanged. */
export function partBody(file: string, part: MimePart): AsyncIterable<Buffer> {
  const raw = readRange(file, part.bodyStart, part.bodyEnd);
  if (part.transferEncoding === 'base64') return base64Decode(raw);
  if (part.transferEncoding === 'quoted-printable') return qpDecode(raw);
  return raw;
}

export async function partToBuffer(file: string, part: MimePart): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of partBody(file, part)) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Decodes to a file (for upload in ranges) and returns the decoded size. */
export async function partToFile(file: string, part: MimePart, dest: string): Promise<number> {
  const out = createWriteStream(dest, { flags: 'wx', mode: 0o600 });
  let size = 0;
  try {
    for await (const c of partBody(file, part)) {
      size += c.length;
      if (!out.write(c)) await once(out, 'drain');
    }
  } finally {
    out.end();
    await once(out, 'close');
  }
  return size;
}

/** The decoded size of a leaf part: its raw size for identity encodings, else counted by decoding it (nothing is kept). */
export async function decodedSize(file: string, part: MimePart): Promise<number> {
  if (part.transferEncoding !== 'base64' && part.transferEncoding !== 'quoted-printable') return part.bodyEnd - part.bodyStart;
  let size = 0;
  for await (const c of partBody(file, part)) size += c.length;
  return size;
}

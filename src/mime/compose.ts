/** The bytes sent to Graph: the spooled message with a Bcc: header for envelope-only recipients. */

import { readRange } from './message-file.js';

/** A Bcc: header folded at about 78 characters (RFC 5322 section 2.1.1); '' when there is nobody to add. */
export function bccHeader(addresses: readonly string[]): string {
  if (addresses.length === 0) return '';
  let out = 'Bcc:';
  let line = out.length;
  addresses.forEach((a, i) => {
    const item = ` ${a}${i < addresses.length - 1 ? ',' : ''}`;
    if (line + item.length > 78 && line > 4) {
      out += '\r\n';
      line = 0;
    }
    out += item;
    line += item.length;
  });
  return `${out}\r\n`;
}

export function base64Length(rawBytes: number): number {
  return Math.ceil(rawBytes / 3) * 4;
}

/**
 * Streams prefix + the file's byte ranges [start, end), in order, as base64 without holding the message:
 * each chunk is encoded up to a multiple of 3 bytes and the remainder carried into the next, so the
 * output is one continuous base64 string. `onDone` fires when the last byte has been produced (the
 * request body was fully handed over).
 */
export async function* base64OfRanges(prefix: Buffer, file: string, ranges: readonly (readonly [number, number])[], onDone?: () => void): AsyncGenerator<Buffer> {
  let carry: Buffer = prefix;
  for (const [start, end] of ranges) {
    for await (const chunk of readRange(file, start, end, 192 * 1024)) {
      const buf = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      const cut = buf.length - (buf.length % 3);
      if (cut > 0) yield Buffer.from(buf.subarray(0, cut).toString('base64'), 'latin1');
      carry = buf.subarray(cut);
    }
  }
  if (carry.length) yield Buffer.from(carry.toString('base64'), 'latin1');
  onDone?.();
}

/** prefix + the file's first `size` bytes (the message part of a spool file) as base64. */
export function base64Stream(prefix: Buffer, file: string, size: number, onDone?: () => void): AsyncGenerator<Buffer> {
  return base64OfRanges(prefix, file, [[0, size]], onDone);
}

/** A message as bytes in a file (the spool's, which its envelope trailer follows) and how to read it: never past `size`. */

import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** The message part of a file: bytes [0, size) of `file`; `bytes` holds them when they were read already. */
export interface MessageData {
  file: string;
  size: number;
  bytes?: Buffer;
}

/** Bytes [start, end) of `file`, streamed. */
export function readRange(file: string, start: number, end: number, highWaterMark = 256 * 1024): AsyncIterable<Buffer> {
  if (end <= start) return (async function* () {})();
  return createReadStream(file, { start, end: end - 1, highWaterMark }) as AsyncIterable<Buffer>;
}

/** Bytes [start, end) of `file`, in one buffer. */
export async function readSlice(file: string, start: number, end: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    return await readAt(fh, start, Math.max(0, end - start));
  } finally {
    await fh.close();
  }
}

/** `length` bytes from `position`, fewer only at the end of the file. */
export function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  return readInto(fh, Buffer.allocUnsafe(length), position, length);
}

/** As readAt, into the front of `buf` (at least `length` long): the result is a view of it. */
export async function readInto(fh: FileHandle, buf: Buffer, position: number, length: number): Promise<Buffer> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

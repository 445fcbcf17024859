/** The .msg file: the message as received, then the envelope it was accepted with (a JSON line and a fixed-size footer). */

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { SpoolFileError } from '../errors.js';
import { readAt, type MessageData } from '../mime/message-file.js';
import type { Envelope } from './envelope.js';

/**
 * Files below this size are read whole, synchronously, into a buffer of their size when a message is
 * loaded for delivery. Larger ones are opened again through the thread pool and only their trailer is read.
 */
export const FIRST_READ = 32 * 1024;
const FOOTER_TAG = '#envelope ';
/** '#envelope 0000000123\n': the length of the envelope's JSON line before it. */
const FOOTER_BYTES = FOOTER_TAG.length + 11;
const FOOTER_RE = /^#envelope (\d{10})\n$/;

export function envelopeTrailer(env: Envelope): Buffer {
  const json = JSON.stringify(env);
  // Measured, then written in place: one buffer, and no second string holding JSON and footer together.
  const length = Buffer.byteLength(json) + 1;
  const out = Buffer.allocUnsafe(length + FOOTER_BYTES);
  out.write(json, 0, 'utf8');
  out.write(`\n${FOOTER_TAG}${String(length).padStart(10, '0')}\n`, length - 1, 'latin1');
  return out;
}

/**
 * Reads a .msg file's accepted envelope from its trailer (and, when `wantBytes` and the file is small, the
 * message bytes too). Checks that the footer, the JSON and the size agree, so a damaged file is reported,
 * never sent.
 */
export async function readMessageFile(file: string, wantBytes = false): Promise<{ env: Envelope; data: MessageData }> {
  // Most messages are small and were written moments ago: read whole, synchronously, from the page cache.
  const small = wantBytes ? readSmallFileSync(file) : null;
  if (small) return parseMessageFile(file, small, 0, small.length, null);
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const at = Math.max(0, size - 16 * 1024);
    return await parseMessageFile(file, await readAt(fh, at, size - at), at, size, fh);
  } finally {
    await fh.close();
  }
}

/**
 * The whole file when it is smaller than FIRST_READ, else null. Synchronous on purpose: four system calls
 * (open, fstat, read, close) on a file in the page cache cost less main-thread time than thread-pool round
 * trips, and do not queue behind the fsyncs of messages being accepted.
 */
function readSmallFileSync(file: string): Buffer | null {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size >= FIRST_READ) return null;
    const buf = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, buf, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/** `buf` holds the file's bytes from offset `at` to its end (`size`); `fh` reads what lies before. */
async function parseMessageFile(file: string, buf: Buffer, at: number, size: number, fh: FileHandle | null): Promise<{ env: Envelope; data: MessageData }> {
  if (size < FOOTER_BYTES) throw new SpoolFileError(file, 'too short for an envelope trailer');
  const m = FOOTER_RE.exec(buf.toString('latin1', buf.length - FOOTER_BYTES));
  if (!m) throw new SpoolFileError(file, 'no envelope trailer at the end');
  const jsonLength = Number(m[1]);
  const jsonStart = size - FOOTER_BYTES - jsonLength;
  if (jsonStart < 0) throw new SpoolFileError(file, 'envelope trailer longer than the file');
  if (jsonStart < at) {
    buf = Buffer.concat([await readAt(fh!, jsonStart, at - jsonStart), buf]);
    at = jsonStart;
  }
  let env: Envelope;
  try {
    env = JSON.parse(buf.toString('utf8', jsonStart - at, buf.length - FOOTER_BYTES)) as Envelope;
  } catch {
    throw new SpoolFileError(file, 'envelope trailer is not valid JSON');
  }
  if (env.size !== jsonStart) throw new SpoolFileError(file, `envelope says ${env.size} message bytes, the file holds ${jsonStart}`);
  const data: MessageData = { file, size: env.size };
  if (at === 0) data.bytes = buf.subarray(0, env.size);
  return { env, data };
}

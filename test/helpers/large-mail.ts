/** Builds test messages with nodemailer's composer straight to a file, and sends files through the relay. */

import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, openSync, closeSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import nodemailer from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type Mail from 'nodemailer/lib/mailer/index.js';

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const dir = mkdtempSync(path.join(tmpdir(), 'large-mail-'));
let n = 0;

/** A file of `size` random bytes written in 1 MB pieces; returns its path and sha256. */
export async function randomFile(size: number, name = `blob${n++}.bin`): Promise<{ path: string; sha256: string; size: number }> {
  const file = path.join(dir, name);
  const hash = createHash('sha256');
  const fd = openSync(file, 'w');
  try {
    for (let left = size; left > 0; ) {
      const piece = randomBytes(Math.min(left, 1024 * 1024));
      hash.update(piece);
      writeSync(fd, piece);
      left -= piece.length;
    }
  } finally {
    closeSync(fd);
  }
  return { path: file, sha256: hash.digest('hex'), size };
}

/** Composes the message to a file without holding it in memory (attachments may be given by path). */
export async function composeToFile(opts: Mail.Options): Promise<string> {
  const file = path.join(dir, `msg${n++}.eml`);
  const out = createWriteStream(file);
  await pipeline(new MailComposer(opts).compile().createReadStream(), out);
  return file;
}

export async function sendFile(port: number, from: string, to: string[], file: string): Promise<void> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, socketTimeout: 300_000 });
  try {
    await transport.sendMail({ envelope: { from, to }, raw: { path: file } });
  } finally {
    transport.close();
  }
}

/** Builds test messages with nodemailer's composer straight to a file, and sends files through the relay. */

import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, openSync, closeSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import nodemailer from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type Mail from 'nodemailer/lib/mailer/index.js';
import { RawSmtp } from './smtp-clients.js';

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

/**
 * Sends raw message bytes over a plain socket as an 8-bit client does (MAIL FROM with BODY=8BITMIME and
 * SMTPUTF8, no re-encoding): header bytes arrive exactly as given. Rejects on any unexpected reply.
 */
export async function sendRaw8bit(port: number, from: string, to: string[], bytes: Buffer): Promise<void> {
  const c = await RawSmtp.connect(port);
  const expectCode = async (pending: Promise<{ code: number; text: string }>, code: number): Promise<void> => {
    const reply = await pending;
    if (reply.code !== code) throw new Error(`expected ${code}, got: ${reply.text}`);
  };
  try {
    await expectCode(c.reply(), 220);
    await expectCode(c.cmd('EHLO scanner.test'), 250);
    await expectCode(c.cmd(`MAIL FROM:<${from}> BODY=8BITMIME SMTPUTF8`), 250);
    for (const rcpt of to) await expectCode(c.cmd(`RCPT TO:<${rcpt}>`), 250);
    await expectCode(c.cmd('DATA'), 354);
    // Dot-stuffing (RFC 5321 section 4.5.2); the message is expected to end with CRLF.
    c.write(Buffer.from(bytes.toString('latin1').replace(/^\./gm, '..'), 'latin1'));
    await expectCode(c.cmd('.'), 250);
    await c.cmd('QUIT');
  } finally {
    c.close();
  }
}

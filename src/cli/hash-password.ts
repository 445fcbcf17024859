/** `smtp-graph-relay hash-password`: reads one password from stdin (never argv, which `ps` shows), prints its hash. */

import { hashPassword } from '../config/password-hash.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function hashPasswordCommand(): Promise<void> {
  if (process.stdin.isTTY) process.stderr.write('password (then Enter and Ctrl-D): ');
  // Only the line ending is stripped: spaces may be part of the password.
  const password = (await readStdin()).replace(/\r?\n$/, '');
  if (password.length === 0) {
    process.stderr.write('smtp-graph-relay: hash-password: empty password on stdin\n');
    process.exit(2);
  }
  if (password.length < 12) process.stderr.write('smtp-graph-relay: warning: passwords shorter than 12 characters are easy to guess\n');
  process.stdout.write(`${await hashPassword(password)}\n`);
}

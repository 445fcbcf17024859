/**
 * The ingest reference: a bare smtp-server that owns each message on disk before its 250 — write a tmp
 * file, fsync it, rename it into the spool, fsync the spool folder — and does nothing else.
 * usage: node --import tsx bench/bare-server.ts SPOOL_DIR   (prints {"port":N} when listening)
 */

import { constants as fsc } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { SMTPServer } from 'smtp-server';
import { setGreetingDelay } from '../src/smtp/smtp-server-internals.js';

const spool = process.argv[2];
if (!spool) throw new Error('usage: bare-server.ts SPOOL_DIR');
const tmp = path.join(spool, 'tmp');
const queue = path.join(spool, 'queue');
await mkdir(tmp, { recursive: true });
await mkdir(queue, { recursive: true });
const queueDir = await open(queue, 'r');
let seq = 0;
const prefix = randomBytes(4).toString('hex');

async function writeSynced(file: string, chunks: Buffer[]): Promise<void> {
  const fh = await open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o640);
  try {
    await fh.writev(chunks);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function store(chunks: Buffer[]): Promise<string> {
  const id = `${prefix}${(seq++).toString(36)}`;
  const tmpPath = path.join(tmp, `${id}.eml`);
  await writeSynced(tmpPath, chunks);
  await rename(tmpPath, path.join(queue, `${id}.eml`));
  await queueDir.sync();
  return id;
}

const server = new SMTPServer({
  name: 'bare.bench.example',
  size: 3 * 1024 * 1024,
  disabledCommands: ['AUTH', 'STARTTLS'],
  authOptional: true,
  disableReverseLookup: true,
  logger: false,
  onData(stream, _session, cb) {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      store(chunks).then(
        (id) => cb(null, `Ok: queued as ${id}`),
        (err: Error) => cb(err),
      );
    });
  },
});
// Greets at once, as the relay's listeners do by default: smtp-server's own 100 ms pause would make the
// one-connection-per-message row measure the pause, not acceptance.
setGreetingDelay(server, 0);
server.listen(0, '127.0.0.1', () => {
  const addr = server.server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
});
const stop = (): void => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

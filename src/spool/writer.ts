/** Writes one message into tmp/ with as few system calls as the accept path can afford; Spool.commit makes it the relay's. */

import { close, constants as fsc, fsync, open as openCb, writev } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { MessageData } from '../mime/message-file.js';

// The accept path's file calls on a plain descriptor: fs/promises' FileHandle costs more per call (see SpoolWriter).
const openFd = promisify(openCb);
const writevFd = promisify(writev);
const fsyncFd = promisify(fsync);
const closeFd = promisify(close);

const FLUSH_BYTES = 256 * 1024;

/** Receives one message's bytes into tmp/; nothing is in the queue until Spool.commit. */
export class SpoolWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes of the message written so far (the envelope trailer is not counted). */
  bytes = 0;
  /**
   * A plain descriptor and callback calls, not a FileHandle: on the accept path fs/promises cost more main
   * thread per call (a handle object, reference counting, a promise each) and 7 KB of garbage a message.
   */
  private fd: number | null = null;
  constructor(
    readonly id: string,
    readonly tmpPath: string,
  ) {}

  /**
   * Small chunks are gathered and written together. Returns null when the chunk was only gathered, or
   * the write in progress, which is the backpressure: no more chunks until it settles.
   */
  write(chunk: Buffer): Promise<void> | null {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.bytes += chunk.length;
    return this.pendingBytes >= FLUSH_BYTES ? this.flush() : null;
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes === 0 && this.fd !== null) return;
    const chunks = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    // Opened at the first flush: a small message costs one open, one writev, one fsync and one close.
    this.fd ??= await openFd(this.tmpPath, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o640);
    if (chunks.length) await writeAll(this.fd, chunks);
  }

  /** Flushes and fsyncs; the data (and the trailer, when one was added) is on disk when this resolves. */
  async finish(trailer?: Buffer): Promise<void> {
    if (trailer) {
      this.pending.push(trailer);
      this.pendingBytes += trailer.length;
    }
    await this.flush();
    const fd = this.fd!;
    await fsyncFd(fd);
    this.fd = null;
    // The data is on disk: the close need not hold up the rename and the 250 (one thread-pool round
    // trip less per message), and an error from it cannot undo the fsync, so it is not waited for.
    close(fd, () => undefined);
  }

  /** The message bytes, for senders, while the file is in tmp/ (passthrough listeners). */
  data(): MessageData {
    return { file: this.tmpPath, size: this.bytes };
  }

  async abort(): Promise<void> {
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) await closeFd(fd).catch(() => undefined);
    await unlink(this.tmpPath).catch(() => undefined);
  }
}

/**
 * writev until every byte is written. A regular file takes all at once unless the disk fills up part way;
 * then the short count must not pass for a whole message (the next call reports ENOSPC).
 */
async function writeAll(fd: number, chunks: Buffer[]): Promise<void> {
  for (;;) {
    let { bytesWritten: written } = await writevFd(fd, chunks);
    if (written === 0) throw new Error('writev wrote nothing');
    let i = 0;
    while (i < chunks.length && written >= chunks[i]!.length) written -= chunks[i++]!.length;
    if (i === chunks.length) return;
    chunks = [chunks[i]!.subarray(written), ...chunks.slice(i + 1)];
  }
}

/**
 * The in-flight journal (`spool/inflight.log`): which messages have a Graph attempt under way, so that after
 * a crash the relay knows which ones Graph may have sent, and looks those up before sending them again.
 *
 * One line per event, appended: `S <queue id>` when an attempt starts (fsynced before the request that can
 * submit the message goes out), `F <queue id>` when its outcome is recorded in the spool (written, not
 * fsynced: a finish lost to a power cut costs a needless look-up, never a message). The starts of one
 * event-loop turn share one write and one fsync (a group commit); finishes ride along. At start the
 * relay reads the unfinished starts, records them in the messages' envelopes, and empties the journal;
 * while it runs, a journal over ROTATE_BYTES is rewritten with only the attempts still in flight.
 */

import { close, constants as fsc, fdatasync, fsync, open as openCb, write } from 'node:fs';
import { open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { SpoolFileError } from '../errors.js';
import type { Envelope } from './envelope.js';
import { QUEUE_ID_RE } from './queue-id.js';
import type { Spool } from './spool.js';

const openFd = promisify(openCb);
const writeFd = promisify(write);
const fdatasyncFd = promisify(fdatasync);
const fsyncFd = promisify(fsync);
const closeFd = promisify(close);

const ROTATE_BYTES = 8 * 1024 * 1024;
/** Finishes not carried by a start's write are written this long after, at the latest. */
const FINISH_WITHIN_MS = 200;
const LINE = /^([SF]) (\S+)$/;

/** The queue ids whose last start has no finish after it: what a crash left in flight. Torn or foreign lines are skipped. */
export function unfinishedIn(text: string): Set<string> {
  const open = new Set<string>();
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m || !QUEUE_ID_RE.test(m[2]!)) continue;
    if (m[1] === 'S') open.add(m[2]!);
    else open.delete(m[2]!);
  }
  return open;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class InflightJournal {
  readonly file: string;
  private fd: number | null = null;
  private lines: string[] = [];
  private waiters: Waiter[] = [];
  private scheduled = false;
  /** Appends (and their fsyncs) under way; a rewrite waits for them. */
  private readonly writing = new Set<Promise<void>>();
  /** A rewrite under way: appends wait for it. */
  private rewriting: Promise<void> | null = null;
  private finishTimer: NodeJS.Timeout | null = null;
  private bytes = 0;
  /** A write failed part-way: the file may end in a torn line, so the next write starts a fresh file. */
  private dirty = false;
  /** Attempts started and not finished, as the journal says them. */
  private readonly open = new Set<string>();
  private closed = false;
  /** Writes and fsyncs made, for tests and the curious. */
  readonly stats = { writes: 0, syncs: 0, rewrites: 0 };

  /** `rotateBytes`: past this size the journal is rewritten with the open starts only (tests make it small). */
  constructor(
    spoolDir: string,
    private readonly rotateBytes = ROTATE_BYTES,
  ) {
    this.file = path.join(spoolDir, 'inflight.log');
  }

  /** What the last run left unfinished (read before anything is appended); the journal is opened by `restart`. */
  async unfinished(): Promise<Set<string>> {
    const text = await readFile(this.file, 'latin1').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    return unfinishedIn(text);
  }

  /** Starts an empty journal (once what it held is recorded elsewhere), durably: written, fsynced, renamed, folder fsynced. */
  async restart(): Promise<void> {
    await this.rewrite('');
  }

  /** Resolves once the start is on disk; rejects when it cannot be written, and then the attempt must not send. */
  started(id: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`${this.file} is closed: the relay is stopping`));
    this.open.add(id);
    this.lines.push(`S ${id}\n`);
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.kick();
    });
  }

  /**
   * The attempt's outcome is recorded in the spool: written with the next start's write, or within
   * FINISH_WITHIN_MS, without an fsync of its own (a finish lost to a crash costs a needless look-up).
   */
  finished(id: string): void {
    if (!this.open.delete(id) || this.closed) return;
    this.lines.push(`F ${id}\n`);
    this.finishSoon();
  }

  private finishSoon(): void {
    this.finishTimer ??= setTimeout(() => {
      this.finishTimer = null;
      this.kick();
    }, FINISH_WITHIN_MS).unref();
  }

  /** Whether an attempt of this message started and has not finished (its outcome could not be recorded). */
  isOpen(id: string): boolean {
    return this.open.has(id);
  }

  /** At the stop: starts are refused from now on; finishes still pending are written; what is unfinished stays for the next start. */
  async close(): Promise<void> {
    if (this.finishTimer) clearTimeout(this.finishTimer);
    this.finishTimer = null;
    await Promise.allSettled([...this.writing, this.rewriting]);
    if (this.lines.length && this.fd !== null && !this.dirty && !this.closed) await this.append(`\n${this.lines.splice(0).join('')}`, false).catch(() => undefined);
    this.closed = true;
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) await closeFd(fd).catch(() => undefined);
  }

  /**
   * The lines of one event-loop turn go in one write (and one fsync when a start is among them), started at
   * the end of the turn, as the spool's DirSyncer does: a batch does not wait for the one before it, whose
   * lines an fsync of its own would cover anyway. Only a rewrite (a fresh file) waits for the writes under way.
   */
  private kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const lines = this.lines;
    const waiters = this.waiters;
    this.lines = [];
    this.waiters = [];
    if (lines.length === 0) return;
    try {
      if (this.closed) throw new Error(`${this.file} is closed: the relay is stopping`);
      if (this.rewriting) await this.rewriting;
      if (this.dirty || this.fd === null || this.bytes > this.rotateBytes) {
        // A fresh file holds every open start, those of this batch included: the batch's lines are in it.
        this.rewriting ??= Promise.allSettled([...this.writing])
          .then(() => this.rewrite([...this.open].map((id) => `S ${id}\n`).join('')))
          .finally(() => (this.rewriting = null));
        await this.rewriting;
      } else {
        // A leading line end: a line torn by a write that failed part-way cannot swallow this batch's first line.
        const write = this.append(`\n${lines.join('')}`, waiters.length > 0);
        this.writing.add(write);
        await write.finally(() => this.writing.delete(write));
      }
      for (const w of waiters) w.resolve();
    } catch (err) {
      this.dirty = true;
      for (const w of waiters) w.reject(err);
    }
  }

  private async append(text: string, sync: boolean): Promise<void> {
    const fd = this.fd!;
    const buf = Buffer.from(text, 'latin1');
    for (let at = 0; at < buf.length; ) {
      const { bytesWritten } = await writeFd(fd, buf, at, buf.length - at);
      if (bytesWritten === 0) throw new Error(`${this.file}: write wrote nothing`);
      at += bytesWritten;
      this.bytes += bytesWritten;
    }
    this.stats.writes++;
    if (!sync) return;
    await fdatasyncFd(fd);
    this.stats.syncs++;
  }

  /** Replaces the journal with `text`: a temporary file written and fsynced, renamed over it, the folder fsynced. */
  private async rewrite(text: string): Promise<void> {
    const tmp = `${this.file}.tmp`;
    const fd = await openFd(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_APPEND, 0o640);
    try {
      const buf = Buffer.from(text, 'latin1');
      for (let at = 0; at < buf.length; ) at += (await writeFd(fd, buf, at, buf.length - at)).bytesWritten || fail(tmp);
      await fsyncFd(fd);
      await rename(tmp, this.file);
      const dir = await open(path.dirname(this.file), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch (err) {
      await closeFd(fd).catch(() => undefined);
      throw err;
    }
    const old = this.fd;
    this.fd = fd;
    this.bytes = text.length;
    this.dirty = false;
    this.stats.syncs++;
    this.stats.rewrites++;
    if (old !== null) await closeFd(old).catch(() => undefined);
  }
}

/**
 * At start, before the queue is loaded: each message the journal shows in flight that is still queued gets a
 * pending look-up in its envelope, timed from now (Graph may have taken its request up to the crash), and
 * the folder is fsynced; only then does the journal start empty. Returns those queue ids.
 */
export async function recoverInflight(spool: Spool, journal: InflightJournal, now: number): Promise<string[]> {
  const marked: string[] = [];
  for (const id of await journal.unfinished()) {
    let env: Envelope;
    try {
      env = await spool.readEnvelope('queue', id);
    } catch (err) {
      // Delivered or dead-lettered before the crash; or unreadable, and then never sent (loading the queue says so).
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof SpoolFileError) continue;
      throw err;
    }
    env.pendingLookup = { since: new Date(now).toISOString(), lookups: 0, reason: 'crash' };
    await spool.updateEnvelope('queue', env);
    marked.push(id);
  }
  if (marked.length) await spool.syncDir('queue');
  await journal.restart();
  return marked;
}

function fail(file: string): never {
  throw new Error(`${file}: write wrote nothing`);
}

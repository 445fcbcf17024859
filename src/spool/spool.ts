/** The spool: a directory queue that owns every accepted message until Graph has taken it. */

import { close, closeSync, constants as fsc, fstatSync, fsync, open as openCb, openSync, readSync, writev } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { QUEUE_ID_RE } from './queue-id.js';
import { readAt, type MessageData } from '../mime/message-file.js';
import { SpoolFileError } from '../errors.js';

/**
 * Layout (one file a message, as Postfix keeps envelope and content in one queue file):
 *   tmp/     files being written; anything here after a crash was never acknowledged and is removed
 *   queue/   <id>.msg: accepted, waiting for (or in) delivery
 *   dead/    <id>.msg: failed permanently or expired; the envelope's lastError says why
 * A .msg file is the message as received (env.size bytes) followed by its envelope as written at
 * acceptance (a JSON line and a fixed-size footer giving its length), so one fsync'd file and one rename
 * make a message the relay's. It is never written again. What changes later (attempts, next attempt,
 * last error) goes to <id>.json beside it, the whole envelope rewritten atomically, which then wins.
 * A message is in a state exactly when its .msg file is in that state's folder; a move writes the .json
 * into the new folder first, so a crash mid-move leaves a .json pointing the way for recovery.
 */
export type SpoolState = 'queue' | 'dead';

export interface LastError {
  at: string;
  kind: 'transient' | 'permanent';
  reason: string;
  status?: number;
  code?: string;
  message: string;
  requestId?: string;
}

export interface Envelope {
  version: 1;
  id: string;
  /** '' is the null sender <>. */
  mailFrom: string;
  rcptTo: string[];
  /** The mailbox (UPN) whose /users/{upn}/sendMail sends this message. */
  mailbox: string;
  /** Envelope recipients that are not in To/Cc; delivery adds them as a Bcc: header. */
  bcc: string[];
  clientAddress: string;
  clientHostname: string;
  helo: string;
  listener: string;
  receivedAt: string;
  /** Bytes of the message (as received plus our Received: header) at the start of its .msg file. */
  size: number;
  attempts: number;
  nextAttemptAt: string;
  lastError: LastError | null;
  /** Set once an attempt ended in a way that Graph may have sent the message anyway. */
  possibleDuplicate?: boolean;
  /** Set on delivery status notifications the relay generated itself, so they are never bounced. */
  isBounce?: boolean;
  /** Set once a "delayed" notice went to the sender, so it goes only once. */
  delayWarned?: boolean;
}

/**
 * fsync of a directory. Callers of one event-loop turn share one fsync, started at the end of that turn
 * (setImmediate): each caller's rename is done before it asks, so the shared fsync covers it. Waiting for
 * a running fsync to end before starting the next one (a classic group commit) saved little here and
 * added up to one fsync of latency to every 250.
 */
class DirSyncer {
  private next: Promise<void> | null = null;
  constructor(private readonly handle: FileHandle) {}

  sync(): Promise<void> {
    this.next ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        this.next = null;
        fsyncFd(this.handle.fd).then(resolve, reject);
      });
    });
    return this.next;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}



// The accept path's file calls on a plain descriptor: fs/promises' FileHandle costs more per call (see SpoolWriter).
const openFd = promisify(openCb);
const writevFd = promisify(writev);
const fsyncFd = promisify(fsync);
const closeFd = promisify(close);

const FLUSH_BYTES = 256 * 1024;
/**
 * Files below this size are read whole, synchronously, into a buffer of their size when a message is
 * loaded for delivery. Larger ones are opened again through the thread pool and only their trailer is read.
 */
const FIRST_READ = 32 * 1024;
const FOOTER_TAG = '#envelope ';
/** '#envelope 0000000123\n': the length of the envelope's JSON line before it. */
const FOOTER_BYTES = FOOTER_TAG.length + 11;
const FOOTER_RE = /^#envelope (\d{10})\n$/;

function envelopeTrailer(env: Envelope): Buffer {
  const json = JSON.stringify(env);
  // Measured, then written in place: one buffer, and no second string holding JSON and footer together.
  const length = Buffer.byteLength(json) + 1;
  const out = Buffer.allocUnsafe(length + FOOTER_BYTES);
  out.write(json, 0, 'utf8');
  out.write(`\n${FOOTER_TAG}${String(length).padStart(10, '0')}\n`, length - 1, 'latin1');
  return out;
}

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

export interface RecoveryReport {
  removedTmp: number;
  /** State files (.json) whose message was gone: it was delivered or deleted just before the crash. */
  removedOrphans: number;
  completedMoves: number;
}

export class Spool {
  readonly tmpDir: string;
  readonly queueDir: string;
  readonly deadDir: string;
  private queueSync!: DirSyncer;
  private deadSync!: DirSyncer;
  /**
   * Which messages have a state file ("queue/<id>"), known once recover() has read the folders: the relay
   * owns the spool, so a fresh message's delivery need not look for (or unlink) a .json that is not there.
   * null (queue tools beside a stopped relay): unknown, always look.
   */
  private stateFiles: Set<string> | null = null;

  // The folders are normalized here, once: the paths of messages are then joined by hand, since path.join
  // normalizes again on every call (1.5 KB of garbage per message on the accept path).
  constructor(readonly directory: string) {
    this.tmpDir = path.join(directory, 'tmp');
    this.queueDir = path.join(directory, 'queue');
    this.deadDir = path.join(directory, 'dead');
  }

  /** Opens the spool for use by the relay: creates folders and repairs what a crash left behind. */
  async open(): Promise<RecoveryReport> {
    await this.openDirs();
    return this.recover();
  }

  /** Folders and directory handles only, no recovery: for queue tools working beside a stopped relay. */
  async openDirs(): Promise<void> {
    await this.ensureDirs();
    this.queueSync = new DirSyncer(await open(this.queueDir, 'r'));
    this.deadSync = new DirSyncer(await open(this.deadDir, 'r'));
  }

  async ensureDirs(): Promise<void> {
    for (const d of [this.tmpDir, this.queueDir, this.deadDir]) await mkdir(d, { recursive: true, mode: 0o750 });
  }

  async close(): Promise<void> {
    await this.queueSync?.close().catch(() => undefined);
    await this.deadSync?.close().catch(() => undefined);
  }

  dir(state: SpoolState): string {
    return state === 'queue' ? this.queueDir : this.deadDir;
  }

  /** The message's file: the message, then the envelope it was accepted with. */
  messagePath(state: SpoolState, id: string): string {
    return `${this.dir(state)}${path.sep}${id}.msg`;
  }

  /** The envelope as changed since acceptance; absent until the first change. */
  statePath(state: SpoolState, id: string): string {
    return `${this.dir(state)}${path.sep}${id}.json`;
  }

  async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { removedTmp: 0, removedOrphans: 0, completedMoves: 0 };
    for (const f of await readdir(this.tmpDir)) {
      await rm(path.join(this.tmpDir, f), { force: true });
      report.removedTmp++;
    }
    // Each folder is read once; the sets follow every change below, and the state files are taken from them.
    const files = { queue: new Set(await readdir(this.queueDir)), dead: new Set(await readdir(this.deadDir)) };
    for (const [here, other] of [['queue', 'dead'], ['dead', 'queue']] as const) {
      for (const f of files[here]) {
        if (!f.endsWith('.json')) continue;
        const id = f.slice(0, -5);
        if (!QUEUE_ID_RE.test(id) || files[here].has(`${id}.msg`)) continue;
        if (files[other].has(`${id}.msg`)) {
          // A move to `here` wrote the new state, then the crash came before the message followed it.
          await unlink(this.statePath(other, id)).catch(ignoreMissing);
          await rename(this.messagePath(other, id), this.messagePath(here, id));
          files[other].delete(`${id}.json`);
          files[other].delete(`${id}.msg`);
          files[here].add(`${id}.msg`);
          report.completedMoves++;
        } else {
          await unlink(this.statePath(here, id));
          files[here].delete(f);
          report.removedOrphans++;
        }
      }
    }
    if (report.completedMoves) await Promise.all([this.queueSync.sync(), this.deadSync.sync()]);
    this.stateFiles = new Set();
    for (const state of ['queue', 'dead'] as const) {
      for (const f of files[state]) if (f.endsWith('.json')) this.stateFiles.add(`${state}/${f.slice(0, -5)}`);
    }
    return report;
  }


  beginMessage(id: string): SpoolWriter {
    return new SpoolWriter(id, `${this.tmpDir}${path.sep}${id}.msg`);
  }

  /**
   * Makes the message the relay's: data and envelope fsynced in one file, renamed into queue/, and
   * queue/ fsynced. Only after this resolves may the client hear 250.
   */
  async commit(writer: SpoolWriter, env: Envelope): Promise<void> {
    await writer.finish(envelopeTrailer(env));
    await rename(writer.tmpPath, this.messagePath('queue', env.id));
    await this.queueSync.sync();
  }

  /** Records a changed envelope (attempts, next attempt, last error) atomically beside its message. */
  async updateEnvelope(state: SpoolState, env: Envelope): Promise<void> {
    const tmp = path.join(this.tmpDir, `${env.id}.${process.pid}.upd.json`);
    await writeSynced(tmp, `${JSON.stringify(env, null, 1)}\n`);
    await rename(tmp, this.statePath(state, env.id));
    this.stateFiles?.add(`${state}/${env.id}`);
  }

  /** Delivered or deleted: the message goes first, so a crash in between leaves only a state file to clean. */
  async remove(state: SpoolState, id: string): Promise<void> {
    await unlink(this.messagePath(state, id));
    await this.removeStateFile(state, id);
    await this.syncer(state).sync();
  }

  /** Moves a message between queue/ and dead/: the new state lands in the destination first. */
  async move(from: SpoolState, to: SpoolState, env: Envelope): Promise<void> {
    if (from === to) return this.updateEnvelope(to, env);
    await this.updateEnvelope(to, env);
    await this.removeStateFile(from, env.id);
    await rename(this.messagePath(from, env.id), this.messagePath(to, env.id));
    await Promise.all([this.syncer(to).sync(), this.syncer(from).sync()]);
  }

  private mayHaveStateFile(state: SpoolState, id: string): boolean {
    return this.stateFiles?.has(`${state}/${id}`) ?? true;
  }

  private async removeStateFile(state: SpoolState, id: string): Promise<void> {
    if (!this.mayHaveStateFile(state, id)) return;
    await unlink(this.statePath(state, id)).catch(ignoreMissing);
    this.stateFiles?.delete(`${state}/${id}`);
  }

  private syncer(state: SpoolState): DirSyncer {
    return state === 'queue' ? this.queueSync : this.deadSync;
  }

  /** The current envelope: the state file when there is one, else the one the message was accepted with. */
  async readEnvelope(state: SpoolState, id: string): Promise<Envelope> {
    return (await this.load(state, id, false)).env;
  }

  /**
   * Envelope and message for a delivery attempt. Small files are read whole, in one go, so the sender
   * does not open the file again.
   */
  async load(state: SpoolState, id: string, wantBytes = true): Promise<{ env: Envelope; data: MessageData }> {
    const hasState = this.mayHaveStateFile(state, id);
    const updated = !hasState ? null : await readFile(this.statePath(state, id), 'utf8').then(
      (text) => JSON.parse(text) as Envelope,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return null;
        throw err;
      },
    );
    const file = this.messagePath(state, id);
    // The state file holds the whole envelope: without the bytes wanted, the message file is not opened
    // (a restart with 10,000 deferred messages reads half as many files).
    if (updated && !wantBytes) return { env: updated, data: { file, size: updated.size } };
    const read = await readMessageFile(file, wantBytes);
    const env = updated ?? read.env;
    return { env, data: read.data };
  }

  /** Queue ids in a state folder, oldest first (ids are time-ordered). */
  async ids(state: SpoolState): Promise<string[]> {
    const files = await readdir(this.dir(state));
    return files
      .filter((f) => f.endsWith('.msg') && QUEUE_ID_RE.test(f.slice(0, -4)))
      .map((f) => f.slice(0, -4))
      .sort();
  }

  async exists(state: SpoolState, id: string): Promise<boolean> {
    return stat(this.messagePath(state, id)).then(
      () => true,
      () => false,
    );
  }
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

async function writeSynced(file: string, text: string): Promise<void> {
  const fh = await open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC, 0o640);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

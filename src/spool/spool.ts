/** The spool: a directory queue that owns every accepted message until Graph has taken it. */

import { constants as fsc } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { QUEUE_ID_RE } from './queue-id.js';

/**
 * Layout (one pair of files a message; the .json envelope is the commit record):
 *   tmp/     half-written files; anything here after a crash was never acknowledged and is removed
 *   queue/   <id>.eml + <id>.json: accepted, waiting for (or in) delivery
 *   dead/    <id>.eml + <id>.json: failed permanently or expired; lastError says why
 * A message is in a state exactly when its envelope is in that state's folder. The .eml moves first on
 * ingest and last on every other move, so a crash between two renames leaves a state recovery can read.
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
  /** Bytes of the .eml file (the message as received plus our Received: header). */
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

/** fsync of a directory, coalesced: callers that arrive while one runs share the next one. */
class DirSyncer {
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  constructor(private readonly handle: FileHandle) {}

  sync(): Promise<void> {
    if (!this.running) {
      this.running = this.handle.sync().finally(() => {
        this.running = null;
      });
      return this.running;
    }
    if (!this.queued) {
      this.queued = this.running.then(() => {
        this.queued = null;
        return this.sync();
      });
    }
    return this.queued;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

const FLUSH_BYTES = 256 * 1024;

/** Receives one message's bytes into tmp/; nothing is in the queue until Spool.commit. */
export class SpoolWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  bytes = 0;
  private constructor(
    readonly id: string,
    readonly tmpPath: string,
    private readonly fh: FileHandle,
  ) {}

  static async create(id: string, tmpPath: string): Promise<SpoolWriter> {
    const fh = await open(tmpPath, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o640);
    return new SpoolWriter(id, tmpPath, fh);
  }

  /** Small chunks are gathered and written together; the returned promise is the backpressure. */
  async write(chunk: Buffer): Promise<void> {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.bytes += chunk.length;
    if (this.pendingBytes >= FLUSH_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const chunks = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    await this.fh.writev(chunks);
  }

  /** Flushes and fsyncs; the data is on disk when this resolves. */
  async finish(): Promise<void> {
    await this.flush();
    await this.fh.sync();
    await this.fh.close();
  }

  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await unlink(this.tmpPath).catch(() => undefined);
  }
}

export interface RecoveryReport {
  removedTmp: number;
  removedOrphans: number;
  completedMoves: number;
  missingData: string[];
}

export class Spool {
  readonly tmpDir: string;
  readonly queueDir: string;
  readonly deadDir: string;
  private queueSync!: DirSyncer;
  private deadSync!: DirSyncer;

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

  dataPath(state: SpoolState, id: string): string {
    return path.join(this.dir(state), `${id}.eml`);
  }

  envelopePath(state: SpoolState, id: string): string {
    return path.join(this.dir(state), `${id}.json`);
  }

  async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = { removedTmp: 0, removedOrphans: 0, completedMoves: 0, missingData: [] };
    for (const f of await readdir(this.tmpDir)) {
      await rm(path.join(this.tmpDir, f), { force: true });
      report.removedTmp++;
    }
    const queueFiles = new Set(await readdir(this.queueDir));
    const deadFiles = new Set(await readdir(this.deadDir));
    for (const f of queueFiles) {
      if (!f.endsWith('.eml')) continue;
      const id = f.slice(0, -4);
      if (queueFiles.has(`${id}.json`)) continue;
      if (deadFiles.has(`${id}.json`)) {
        // The envelope reached dead/ but the crash came before the data followed it.
        await rename(this.dataPath('queue', id), this.dataPath('dead', id));
        report.completedMoves++;
      } else {
        // Data without an envelope was never committed, so its client never got a 250.
        await unlink(this.dataPath('queue', id));
        report.removedOrphans++;
      }
    }
    for (const f of queueFiles) {
      if (!f.endsWith('.json') || queueFiles.has(`${f.slice(0, -5)}.eml`)) continue;
      const id = f.slice(0, -5);
      if (deadFiles.has(`${id}.eml`) && !deadFiles.has(`${id}.json`)) {
        // A requeue from dead/ moved the envelope; the data had not followed yet.
        await rename(this.dataPath('dead', id), this.dataPath('queue', id));
        report.completedMoves++;
      } else {
        report.missingData.push(id);
      }
    }
    if (report.completedMoves) await this.queueSync.sync();
    return report;
  }

  async beginMessage(id: string): Promise<SpoolWriter> {
    return SpoolWriter.create(id, path.join(this.tmpDir, `${id}.eml`));
  }

  /**
   * Makes the message the relay's: data fsynced (by the writer), envelope written and fsynced, both
   * renamed into queue/, and queue/ fsynced. Only after this resolves may the client hear 250.
   */
  async commit(writer: SpoolWriter, env: Envelope): Promise<void> {
    const tmpEnv = path.join(this.tmpDir, `${env.id}.json`);
    await Promise.all([writer.finish(), writeSynced(tmpEnv, serialize(env))]);
    await rename(writer.tmpPath, this.dataPath('queue', env.id));
    await rename(tmpEnv, this.envelopePath('queue', env.id));
    await this.queueSync.sync();
  }

  /** Rewrites an envelope (attempts, next attempt, last error) atomically. */
  async updateEnvelope(state: SpoolState, env: Envelope): Promise<void> {
    const tmpEnv = path.join(this.tmpDir, `${env.id}.${process.pid}.upd.json`);
    await writeSynced(tmpEnv, serialize(env));
    await rename(tmpEnv, this.envelopePath(state, env.id));
  }

  /** Delivered: the envelope goes first, so a crash in between leaves only an orphan to clean. */
  async remove(state: SpoolState, id: string): Promise<void> {
    await unlink(this.envelopePath(state, id));
    await unlink(this.dataPath(state, id)).catch(ignoreMissing);
    await this.syncer(state).sync();
  }

  /** Moves a message between queue/ and dead/, envelope (the commit record) first. */
  async move(from: SpoolState, to: SpoolState, env: Envelope): Promise<void> {
    if (from === to) return this.updateEnvelope(to, env);
    await this.updateEnvelope(from, env);
    await rename(this.envelopePath(from, env.id), this.envelopePath(to, env.id));
    await rename(this.dataPath(from, env.id), this.dataPath(to, env.id));
    await Promise.all([this.syncer(to).sync(), this.syncer(from).sync()]);
  }

  private syncer(state: SpoolState): DirSyncer {
    return state === 'queue' ? this.queueSync : this.deadSync;
  }

  async readEnvelope(state: SpoolState, id: string): Promise<Envelope> {
    return JSON.parse(await readFile(this.envelopePath(state, id), 'utf8')) as Envelope;
  }

  /** Queue ids in a state folder, oldest first (ids are time-ordered). */
  async ids(state: SpoolState): Promise<string[]> {
    const files = await readdir(this.dir(state));
    return files
      .filter((f) => f.endsWith('.json') && QUEUE_ID_RE.test(f.slice(0, -5)))
      .map((f) => f.slice(0, -5))
      .sort();
  }

  async exists(state: SpoolState, id: string): Promise<boolean> {
    return stat(this.envelopePath(state, id)).then(
      () => true,
      () => false,
    );
  }
}

function serialize(env: Envelope): string {
  return `${JSON.stringify(env, null, 1)}\n`;
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

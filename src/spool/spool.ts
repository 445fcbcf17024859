/** The spool: a directory queue that owns every accepted message until Graph has taken it. */

import { mkdir, open, opendir, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { MessageData } from '../mime/message-file.js';
import type { Envelope, SpoolState } from './envelope.js';
import { envelopeTrailer, readMessageFile } from './format.js';
import { DirSyncer, exists, ignoreMissing, writeSynced } from './fs-sync.js';
import { QUEUE_ID_RE, queueIdOfFile } from './queue-id.js';
import { SpoolWriter } from './writer.js';

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
  /**
   * Whether stateFiles is complete: recovery has read the folders. Until then (a relay that listens while
   * its queue is still being read) every message may have a state file, and is looked for. Above
   * STATE_FILES_CAP entries the set is dropped (null): its memory would grow with the queue.
   */
  private stateKnown = false;

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

  /**
   * What must be done before the relay accepts mail: folders, handles, and tmp/ emptied (what is there was
   * never acknowledged; once SMTP listens, tmp/ holds messages being received). The state files are
   * repaired later by recover(floor), while the relay already listens.
   */
  async openForAccepting(): Promise<number> {
    await this.openDirs();
    this.stateFiles = new Set();
    return this.cleanTmp();
  }

  private async cleanTmp(): Promise<number> {
    let n = 0;
    for (const f of await readdir(this.tmpDir)) {
      await rm(path.join(this.tmpDir, f), { force: true });
      n++;
    }
    return n;
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

  /**
   * Repairs what a crash left in queue/ and dead/: a state file whose message is gone (delivered or deleted
   * just before the crash) is removed; one whose message is still in the other folder finishes the move
   * the crash interrupted. Both folders are streamed (fs.opendir), never listed whole, so a queue of a
   * million messages costs no memory here; only state files are looked at. `floor` (a relay that already
   * accepts mail): only messages with smaller ids, the previous process's, are considered; its own are
   * left alone. Called without it, recover() also empties tmp/.
   */
  async recover(floor?: string): Promise<RecoveryReport> {
    const report: RecoveryReport = { removedTmp: 0, removedOrphans: 0, completedMoves: 0 };
    if (floor === undefined) {
      report.removedTmp = await this.cleanTmp();
      this.stateFiles ??= new Set();
    }
    const found: string[] = [];
    for (const [here, other] of [['queue', 'dead'], ['dead', 'queue']] as const) {
      const dir = await opendir(this.dir(here), { bufferSize: 256 });
      for await (const d of dir) {
        const f = d.name;
        if (!f.endsWith('.json')) continue;
        const id = f.slice(0, -5);
        if (!QUEUE_ID_RE.test(id) || (floor !== undefined && id >= floor)) continue;
        if (await exists(this.messagePath(here, id))) {
          if (found.length <= STATE_FILES_CAP) found.push(`${here}/${id}`);
        } else if (await exists(this.messagePath(other, id))) {
          // A move to `here` wrote the new state, then the crash came before the message followed it.
          await unlink(this.statePath(other, id)).catch(ignoreMissing);
          await rename(this.messagePath(other, id), this.messagePath(here, id));
          this.stateFiles?.delete(`${other}/${id}`);
          if (found.length <= STATE_FILES_CAP) found.push(`${here}/${id}`);
          report.completedMoves++;
        } else {
          await unlink(this.statePath(here, id)).catch(ignoreMissing);
          report.removedOrphans++;
        }
      }
    }
    if (report.completedMoves) await Promise.all([this.queueSync.sync(), this.deadSync.sync()]);
    // Added to what this process recorded meanwhile: a state file is never taken for absent.
    if (this.stateFiles) for (const k of found) this.stateFiles.add(k);
    if (found.length > STATE_FILES_CAP || (this.stateFiles?.size ?? 0) > STATE_FILES_CAP) this.stateFiles = null;
    this.stateKnown = this.stateFiles !== null;
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
    if (this.stateFiles) {
      this.stateFiles.add(`${state}/${env.id}`);
      if (this.stateFiles.size > STATE_FILES_CAP) this.stateFiles = null; // unknown from now on: always look
    }
  }

  /** A state file staged elsewhere (a queue move, spool/move.ts) becomes a queued message's: renamed beside it, and known. */
  async adoptStateFile(file: string, id: string): Promise<void> {
    await rename(file, this.statePath('queue', id));
    this.stateFiles?.add(`queue/${id}`);
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
    if (!this.stateKnown || !this.stateFiles) return true;
    return this.stateFiles.has(`${state}/${id}`);
  }

  private async removeStateFile(state: SpoolState, id: string): Promise<void> {
    if (!this.mayHaveStateFile(state, id)) return;
    await unlink(this.statePath(state, id)).catch(ignoreMissing);
    this.stateFiles?.delete(`${state}/${id}`);
  }

  /** fsync of a state folder: renames made before it (a state file's, say) survive a power cut. */
  syncDir(state: SpoolState): Promise<void> {
    return this.syncer(state).sync();
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
      .map(queueIdOfFile)
      .filter((id): id is string => id !== null)
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
 * The most state files the spool remembers (about 100 bytes each): above it, every load looks for one.
 * Only messages that had an attempt or a move have one, so the cap is reached only by a queue far larger
 * than the active set.
 */
const STATE_FILES_CAP = 100_000;

/**
 * The active set (Postfix's qmgr keeps one, qmgr_message_active_limit): at most `limit` queued messages in
 * the scheduler, the rest left on disk and read in as the active set drains. queue/ is streamed
 * (fs.opendir), never listed whole, so memory does not grow with the queue.
 *
 * A message is in exactly one of two places: the scheduler, or queue/ waiting for a scan. Acceptance puts a
 * message straight into the scheduler when there is room, else leaves it for the next scan pass. A pass
 * reads the folder in directory order (a hash order: mailboxes are read in about their share of the queue)
 * and loads envelopes in batches whenever there is room, pausing while there is none, so one pass reaches
 * every file that was there when it began; a message left on disk during a pass gets another pass.
 *
 * Races: a scan may see a file whose message is in the scheduler (skipped: `has`), or one whose attempt
 * ended (or that a queue tool deleted) between the scan's read of its envelope and its add: the ids that
 * left recently are remembered (a bounded ring), and skipped. Were one ever re-added, its attempt would find
 * no file and end (`vanished`): a message is sent only from its file, which is removed before the message
 * leaves the scheduler, so nothing can be sent twice, and nothing is lost, since a file is never removed
 * because of a scan.
 */

import { opendir } from 'node:fs/promises';
import type { Logger } from '../observability/logger.js';
import type { RelayMetrics } from '../observability/metrics.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import { accountOf, type Envelope } from '../spool/envelope.js';
import { newQueueId, queueIdOfFile, queueIdTime } from '../spool/queue-id.js';
import type { Spool } from '../spool/spool.js';

/** Envelopes read at a time. */
const BATCH = 256;
/** How many of the ids that left the scheduler lately are remembered (a scan batch's reads take milliseconds). */
const RECENT = 8192;
/** Unreadable files remembered so that each is reported once, not at every pass. */
const UNREADABLE_MAX = 10_000;

export interface ActiveSetDeps {
  spool: Spool;
  scheduler: Scheduler;
  metrics: RelayMetrics;
  log: Logger;
  now: () => number;
  limit: number;
  /** A message read in from queue/ (at start or later): the history records it unless it knows it. */
  loaded?: (env: Envelope) => void;
}

/** A fixed-size ring of ids with a set for look-ups: the oldest is forgotten as a new one comes. */
class RecentIds {
  private readonly ring: (string | undefined)[];
  private at = 0;
  private readonly set = new Set<string>();
  constructor(size: number) {
    this.ring = new Array<string | undefined>(size);
  }
  add(id: string): void {
    const old = this.ring[this.at];
    if (old !== undefined) this.set.delete(old);
    this.ring[this.at] = id;
    this.set.add(id);
    this.at = (this.at + 1) % this.ring.length;
  }
  has(id: string): boolean {
    return this.set.has(id);
  }
}

export interface ScanReport {
  /** Messages found in queue/ at start that were not in the active set. */
  queued: number;
  removedOrphans: number;
  completedMoves: number;
}

export class ActiveSet {
  private readonly recent = new RecentIds(RECENT);
  private readonly unreadable = new Set<string>();
  /** A message was left on disk since the current pass began: another pass is needed. */
  private dirty = false;
  private running: Promise<void> | null = null;
  private stopped = false;
  /** Passes may run: the census is done. */
  private scanning = false;
  private waiter: { need: number; resolve: () => void } | null = null;
  /** Resolves when there is nothing left on disk to load (tests, benchmarks). */
  private idleWaiters: (() => void)[] = [];
  readonly limit: number;
  /** Slots taken by envelopes being read. */
  private reserved = 0;
  /** Loaded at a time once this many slots are free: a sixteenth of the set, at most 64. */
  private readonly chunk: number;

  constructor(private readonly d: ActiveSetDeps) {
    this.limit = d.limit;
    this.chunk = Math.max(1, Math.min(64, Math.floor(d.limit / 16)));
  }

  /** A message now in queue/ (accepted, requeued): into the scheduler when there is room, else it waits for a scan. */
  offer(env: Pick<Envelope, 'id' | 'mailbox' | 'account'>, dueAt: number): boolean {
    // A scan may have read the file between its rename into queue/ and this call. (Its count then goes one
    // too low while messages wait on disk; the count of those never goes below 0, so that ends with them.)
    if (this.d.scheduler.has(env.id)) return true;
    if (this.free() > 0) {
      this.d.scheduler.add(env.id, env.mailbox, dueAt, accountOf(env));
      return true;
    }
    this.dirty = true;
    this.kick();
    return false;
  }

  /** A message left the scheduler (its attempt ended for good, or it was deleted); from the scheduler's onForget. */
  forgotten(id: string): void {
    this.recent.add(id);
    this.wake();
  }

  /** A queue tool deleted a message that was on disk, not in the active set. */
  deletedOnDisk(id: string): void {
    this.recent.add(id);
    this.d.metrics.queue.removeOnDisk();
  }

  /**
   * At start, while SMTP already listens: repairs the state files a crash left (only the previous process's
   * messages), counts what is queued, and starts loading it.
   */
  async start(): Promise<ScanReport> {
    const floor = newQueueId(this.d.now()); // every id this process makes from now on sorts after it
    const repaired = await this.d.spool.recover(floor);
    const census = await this.census(floor);
    this.scanning = true;
    this.dirty = true;
    this.kick();
    return { queued: census, removedOrphans: repaired.removedOrphans, completedMoves: repaired.completedMoves };
  }

  stop(): void {
    this.stopped = true;
    this.waiter?.resolve();
  }

  /** Resolves once a pass has ended with nothing left on disk (tests). */
  drained(): Promise<void> {
    if (!this.running && !this.dirty) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Counts the messages of queue/ older than `floor` that are not in the active set (names only, no file read). */
  private async census(floor: string): Promise<number> {
    let n = 0;
    let oldest: string | null = null;
    for await (const e of await opendir(this.d.spool.queueDir, { bufferSize: 1024 })) {
      const id = queueIdOfFile(e.name);
      if (id === null || id >= floor || this.known(id)) continue;
      n++;
      if (oldest === null || id < oldest) oldest = id;
    }
    this.d.metrics.queue.addOnDisk(n, oldest === null ? this.d.now() : queueIdTime(oldest));
    return n;
  }

  private known(id: string): boolean {
    return this.d.scheduler.has(id) || this.recent.has(id) || this.unreadable.has(id);
  }

  private kick(): void {
    // Not before the census: a message loaded before the census reached it would be counted out, never in.
    if (this.running || this.stopped || !this.scanning) return;
    this.running = this.passes().finally(() => {
      this.running = null;
      if (this.dirty && !this.stopped) this.kick();
      else this.idleWaiters.splice(0).forEach((w) => w());
    });
  }

  private async passes(): Promise<void> {
    while (this.dirty && !this.stopped) {
      this.dirty = false;
      try {
        await this.pass();
      } catch (err) {
        this.d.log.error({ event: 'spool-scan-failed', err }, 'cannot read the queue folder; trying again in 10 s');
        this.dirty = true;
        await new Promise((r) => setTimeout(r, 10_000).unref());
      }
    }
  }

  /** One pass over queue/: every message not yet in the scheduler is loaded, as room allows. */
  private async pass(): Promise<void> {
    const dir = await opendir(this.d.spool.queueDir, { bufferSize: 1024 });
    let batch: string[] = [];
    try {
      for await (const e of dir) {
        if (this.stopped) return;
        const id = queueIdOfFile(e.name);
        if (id === null || this.known(id)) continue;
        batch.push(id);
        if (batch.length >= BATCH) {
          await this.load(batch);
          batch = [];
        }
      }
      if (batch.length > 0 && !this.stopped) await this.load(batch);
    } finally {
      // for await closes the folder at the end and on a break; a throw from load() lands here too.
      await dir.close().catch(() => undefined);
    }
  }

  /** Loads these ids as room allows: a chunk at a time, each chunk's slots reserved while its envelopes are read. */
  private async load(ids: string[]): Promise<void> {
    let i = 0;
    while (i < ids.length && !this.stopped) {
      await this.room(Math.min(ids.length - i, this.chunk));
      if (this.stopped) return;
      const k = Math.min(ids.length - i, this.free());
      const chunk = ids.slice(i, i + k);
      i += k;
      this.reserved += k;
      try {
        await this.read(chunk);
      } finally {
        this.reserved -= k;
      }
    }
  }

  private async read(ids: string[]): Promise<void> {
    const { spool, scheduler, metrics, log } = this.d;
    const envs = await Promise.all(ids.map((id) => spool.readEnvelope('queue', id).catch((err: NodeJS.ErrnoException) => err)));
    const now = this.d.now();
    envs.forEach((env, j) => {
      const id = ids[j]!;
      if (env instanceof Error) {
        // Gone meanwhile (delivered, deleted): nothing to do. Otherwise reported once and left in place.
        if ((env as NodeJS.ErrnoException).code === 'ENOENT') return;
        if (this.unreadable.size < UNREADABLE_MAX) this.unreadable.add(id);
        log.error({ qid: id, event: 'spool-unreadable', err: env }, 'unreadable spool file; left in place for inspection');
        return;
      }
      // Loaded by acceptance, or its attempt ended, while the envelope was read.
      if (this.known(id)) return;
      scheduler.add(id, env.mailbox, now, accountOf(env));
      metrics.queued(env);
      this.d.loaded?.(env);
      metrics.queue.removeOnDisk();
    });
  }

  /** Slots free in the active set, less those reserved for envelopes being read. */
  private free(): number {
    return this.limit - this.d.scheduler.size() - this.reserved;
  }

  /** Waits until `n` slots are free. */
  private room(n: number): Promise<void> {
    if (this.free() >= n || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiter = { need: n, resolve };
    });
  }

  private wake(): void {
    const w = this.waiter;
    if (!w || this.free() < w.need) return;
    this.waiter = null;
    w.resolve();
  }
}

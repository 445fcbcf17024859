/**
 * The history worker thread: owns the SQLite file, writes each batch in one transaction, answers queries, and
 * prunes old messages. SQLite's calls are synchronous; here they never block the relay's event loop.
 */

import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { isBusy } from './database.js';
import { HistoryStore } from './store.js';
import type { DeviceRow, HistoryQuery, HistoryRecord } from './types.js';

export interface WorkerSettings {
  file: string;
  retentionMs: number;
  maxBytes: number;
  /** How often old messages are pruned. */
  pruneEveryMs?: number;
}

export type ToWorker =
  | { type: 'write'; records: HistoryRecord[]; devices: DeviceRow[] }
  | { type: 'query'; id: number; op: 'search'; arg: HistoryQuery }
  | { type: 'query'; id: number; op: 'story'; arg: string }
  | { type: 'query'; id: number; op: 'count'; arg: null }
  | { type: 'prune' }
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready'; devices: DeviceRow[] }
  | { type: 'failed'; message: string }
  | { type: 'written'; records: number }
  | { type: 'write-failed'; records: number; message: string }
  | { type: 'pruned'; messages: number }
  | { type: 'answer'; id: number; result?: unknown; error?: string }
  | { type: 'closed' };

/** A batch is tried again this often while another process (a command line's query) holds the file. */
const BUSY_RETRY_MS = 200;
const BUSY_GIVE_UP_MS = 30_000;

/** The worker's work, apart from the thread's plumbing (so a test can drive it in-process). */
export class HistoryWorker {
  private pending: { records: HistoryRecord[]; devices: DeviceRow[]; since: number }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private pruning = false;

  constructor(
    readonly store: HistoryStore,
    private readonly settings: WorkerSettings,
    private readonly post: (m: FromWorker) => void,
    private readonly now: () => number = Date.now,
  ) {}

  handle(m: ToWorker): void {
    switch (m.type) {
      case 'write':
        this.pending.push({ records: m.records, devices: m.devices, since: this.now() });
        return this.drain();
      case 'query':
        return this.answer(m.id, () => (m.op === 'search' ? this.store.search(m.arg) : m.op === 'story' ? this.store.story(m.arg) : this.store.count()));
      case 'prune':
        return this.prune();
      case 'close':
        this.drain();
        if (this.timer) clearTimeout(this.timer);
        this.store.close();
        return this.post({ type: 'closed' });
    }
  }

  private answer(id: number, fn: () => unknown): void {
    try {
      this.post({ type: 'answer', id, result: fn() });
    } catch (err) {
      this.post({ type: 'answer', id, error: (err as Error).message });
    }
  }

  /** Writes what is waiting, in order; a locked file (a reader right now) is tried again shortly. */
  private drain(): void {
    while (this.pending.length > 0) {
      const b = this.pending[0]!;
      try {
        this.store.write(b.records, b.devices);
      } catch (err) {
        if (isBusy(err) && this.now() - b.since < BUSY_GIVE_UP_MS) {
          this.timer ??= setTimeout(() => {
            this.timer = null;
            this.drain();
          }, BUSY_RETRY_MS);
          return;
        }
        this.pending.shift();
        this.post({ type: 'write-failed', records: b.records.length, message: (err as Error).message });
        continue;
      }
      this.pending.shift();
      this.post({ type: 'written', records: b.records.length });
    }
  }

  /** Chunk by chunk, yielding between chunks so that batches and queries go on. */
  private prune(): void {
    if (this.pruning) return;
    this.pruning = true;
    let total = 0;
    const step = (): void => {
      let n = 0;
      try {
        n = this.store.prune(this.now() - this.settings.retentionMs, this.settings.maxBytes);
      } catch (err) {
        if (!isBusy(err)) {
          this.pruning = false;
          return this.post({ type: 'write-failed', records: 0, message: `prune: ${(err as Error).message}` });
        }
      }
      total += n;
      if (n > 0) return void setImmediate(step);
      this.pruning = false;
      this.post({ type: 'pruned', messages: total });
    };
    step();
  }
}

/**
 * The history is background work: on Linux its thread runs at the lowest priority (nice 19), so that when
 * the cores are busy the SMTP event loop gets them first and the history writes in the gaps (its batches
 * wait in memory meanwhile). Elsewhere, or where it is not allowed, it runs as it is.
 */
export function lowerPriority(): boolean {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) return false;
    setPriority(tid, 19);
    return getPriority(tid) === 19;
  } catch {
    return false;
  }
}

/** The thread's entry: open the file, say ready (with the devices to restore), then serve messages. */
export function runWorker(settings: WorkerSettings, port: NonNullable<typeof parentPort>): void {
  lowerPriority();
  let worker: HistoryWorker;
  try {
    const store = new HistoryStore(settings.file);
    worker = new HistoryWorker(store, settings, (m) => port.postMessage(m));
    port.postMessage({ type: 'ready', devices: store.devices() } satisfies FromWorker);
  } catch (err) {
    port.postMessage({ type: 'failed', message: (err as Error).message } satisfies FromWorker);
    return;
  }
  port.on('message', (m: ToWorker) => worker.handle(m));
  worker.handle({ type: 'prune' });
  setInterval(() => worker.handle({ type: 'prune' }), settings.pruneEveryMs ?? 3_600_000).unref();
}

if (!isMainThread && parentPort && (workerData as { historyWorker?: boolean } | null)?.historyWorker) runWorker(workerData as WorkerSettings, parentPort);

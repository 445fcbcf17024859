/**
 * The delivery history as the relay's event loop sees it: each event becomes a record pushed onto an array
 * (no I/O, no await), and once a second the array goes to the history worker, which writes it in one
 * SQLite transaction. Acceptance never waits for the history; a crash loses at most the last second of it.
 */

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { HistoryConfig } from '../config/visibility.js';
import type { Logger } from '../observability/logger.js';
import type { Envelope } from '../spool/envelope.js';
import { DeviceTracker } from './devices.js';
import type { FromWorker, ToWorker, WorkerSettings } from './worker.js';
import type { AcceptedRecord, HistoryQuery, HistoryRecord, MessageStory, MessageSummary } from './types.js';

/** Posted records not yet written past this are dropped (and counted): the history must never grow the relay's memory without bound. */
const MAX_BEHIND = 200_000;
const BATCH = 5000;

/** What the relay knows at acceptance besides the envelope. */
export interface AcceptedInfo {
  messageId: string | null;
  subject: string | null;
  user: string | null;
  tls: string | null;
}

export interface HistoryStats {
  written: number;
  failed: number;
  dropped: number;
}

export interface HistoryOptions {
  cfg: HistoryConfig;
  log: Logger;
  flushMs?: number;
  now?: () => number;
}

/** The worker: the compiled JavaScript beside this file, or (tests running the TypeScript sources) the .ts through tsx. */
function startWorker(workerData: WorkerSettings & { historyWorker: true }): Worker {
  const js = new URL('./worker.js', import.meta.url);
  if (existsSync(js)) return new Worker(js, { workerData });
  const tsx = pathToFileURL(path.join(path.dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist/esm/api/index.mjs')).href;
  const ts = new URL('./worker.ts', import.meta.url).href;
  return new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(ts)}); });`, { eval: true, workerData });
}

export class History {
  readonly devices: DeviceTracker;
  readonly stats: HistoryStats = { written: 0, failed: 0, dropped: 0 };
  private buf: HistoryRecord[] = [];
  private behind = 0;
  /** Made by start(), once the spool folder exists; records before it wait in `buf`. */
  private worker: Worker | null = null;
  private readonly ready: Promise<void>;
  private opened!: { resolve: () => void; reject: (err: Error) => void };
  private readonly answers = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private closed: Promise<void> | null = null;
  private onClosed: (() => void) | null = null;
  private readonly timer: NodeJS.Timeout;
  /** Who sent each message still in the queue, so that its failure shows on its device. */
  private readonly origin = new Map<string, { user: string | null; client: string }>();
  /** The last failure of each sending mailbox (the status page's mailbox table). */
  readonly mailboxErrors = new Map<string, { at: number; error: string }>();
  private readonly now: () => number;
  private lastFailureLog = 0;

  constructor(private readonly o: HistoryOptions) {
    this.now = o.now ?? Date.now;
    this.devices = new DeviceTracker(o.cfg);
    this.ready = new Promise<void>((resolve, reject) => (this.opened = { resolve, reject }));
    // Whoever needs it awaits it; a relay that stops before starting must not see an unhandled rejection.
    this.ready.catch(() => undefined);
    this.timer = setInterval(() => this.flush(), o.flushMs ?? 1000);
    this.timer.unref();
  }

  /** Starts the worker; resolves once the file is open and the devices are restored (the relay starts SMTP after this). */
  start(): Promise<void> {
    if (this.worker) return this.ready;
    const w = startWorker({ historyWorker: true, file: this.o.cfg.file, retentionMs: this.o.cfg.retentionMs, maxBytes: this.o.cfg.maxBytes });
    this.worker = w;
    w.unref();
    w.on('message', (m: FromWorker) => {
      if (m.type === 'ready') {
        this.devices.load(m.devices);
        this.opened.resolve();
        this.flush();
      } else if (m.type === 'failed') this.opened.reject(new Error(`history ${this.o.cfg.file}: ${m.message}`));
      else this.onMessage(m);
    });
    w.on('error', (err) => {
      this.opened.reject(err);
      this.o.log.error({ event: 'history-failed', err }, 'the history worker failed; mail is not affected');
    });
    return this.ready;
  }

  private onMessage(m: FromWorker): void {
    switch (m.type) {
      case 'written':
        this.behind -= m.records;
        this.stats.written += m.records;
        return;
      case 'write-failed':
        this.behind -= m.records;
        this.stats.failed += m.records;
        this.logFailure(m.message);
        return;
      case 'pruned':
        if (m.messages > 0) this.o.log.info({ event: 'history-pruned', messages: m.messages }, `history: ${m.messages} old message(s) removed (history.retention, history.maxSize)`);
        return;
      case 'answer': {
        const a = this.answers.get(m.id);
        this.answers.delete(m.id);
        if (m.error !== undefined) a?.reject(new Error(m.error));
        else a?.resolve(m.result);
        return;
      }
      case 'closed':
        return this.onClosed?.();
    }
  }

  private logFailure(message: string): void {
    if (this.now() - this.lastFailureLog < 60_000) return;
    this.lastFailureLog = this.now();
    this.o.log.error({ event: 'history-write-failed', error: message }, 'history records could not be written; mail is not affected');
  }

  private push(r: HistoryRecord): void {
    if (this.behind + this.buf.length >= MAX_BEHIND) {
      this.stats.dropped++;
      return;
    }
    this.buf.push(r);
    if (this.buf.length >= BATCH) this.flush();
  }

  /** Hands the gathered records to the worker (one message, one transaction there). */
  flush(): void {
    if (!this.worker) return;
    const devices = this.devices.takeDirty();
    if (this.buf.length === 0 && devices.length === 0) return;
    const records = this.buf;
    this.buf = [];
    this.behind += records.length;
    this.post({ type: 'write', records, devices });
  }

  private post(m: ToWorker): void {
    this.worker?.postMessage(m);
  }

  accepted(env: Envelope, atMs: number, info: AcceptedInfo): void {
    this.origin.set(env.id, { user: info.user, client: env.clientAddress });
    this.devices.sent(info.user, env.clientAddress, atMs, info.tls);
    this.push({ ...acceptedRecord(env, atMs), user: info.user, tls: info.tls, messageId: info.messageId, subject: this.o.cfg.storeSubjects ? info.subject : null });
  }

  /** A message found in the queue at start (or made by the relay: a notice): recorded unless it is already. */
  known(env: Envelope): void {
    this.push(acceptedRecord(env, Date.parse(env.receivedAt) || this.now()));
  }

  /** An SMTP refusal: no message, but its device's last error. */
  refused(user: string | null, client: string, reason: string, reply: string): void {
    this.devices.failed(user, client, this.now(), `${reason}: ${reply}`);
  }

  /** A queue tool or the status page did something to a message. */
  action(qid: string, kind: 'requeued' | 'retry' | 'deleted', by: string): void {
    const state = kind === 'requeued' ? 'queued' : kind === 'deleted' ? 'deleted' : null;
    this.push({ t: 'event', qid, at: this.now(), kind, state, by });
  }

  /** Attributes a final failure to the device that sent the message, and the mailbox's last error. */
  failure(env: Envelope, text: string, final: boolean): void {
    const at = this.now();
    this.mailboxErrors.set(env.mailbox.toLowerCase(), { at, error: text });
    if (!final) return;
    const o = this.origin.get(env.id);
    this.devices.failed(o?.user ?? null, o?.client ?? env.clientAddress, at, `delivery failed: ${text}`);
  }

  done(id: string): void {
    this.origin.delete(id);
  }

  record(r: HistoryRecord): void {
    this.push(r);
  }

  private ask<T>(m: Extract<ToWorker, { type: 'query' }>): Promise<T> {
    if (!this.worker) return Promise.reject(new Error('the history has not started'));
    return new Promise<T>((resolve, reject) => {
      this.answers.set(m.id, { resolve: resolve as (v: unknown) => void, reject });
      this.post(m);
    });
  }

  async search(q: HistoryQuery): Promise<MessageSummary[]> {
    if (this.worker) await this.ready;
    this.flush(); // a search sees what happened up to now
    return this.ask<MessageSummary[]>({ type: 'query', id: this.nextId++, op: 'search', arg: q });
  }

  async story(qid: string): Promise<MessageStory | null> {
    if (this.worker) await this.ready;
    this.flush();
    return this.ask<MessageStory | null>({ type: 'query', id: this.nextId++, op: 'story', arg: qid });
  }

  /** Writes what is left, closes the file and ends the thread. */
  close(timeoutMs = 5000): Promise<void> {
    this.closed ??= (async () => {
      clearInterval(this.timer);
      if (!this.worker) return;
      await this.ready.catch(() => undefined);
      this.flush();
      const closed = new Promise<void>((resolve) => (this.onClosed = resolve));
      this.post({ type: 'close' });
      await Promise.race([closed, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
      await this.worker?.terminate();
    })();
    return this.closed;
  }
}

/** What the envelope alone says of an accepted message; the session's facts (AUTH user, TLS, Message-ID, Subject) unknown. */
export function acceptedRecord(env: Envelope, at: number): AcceptedRecord {
  return { t: 'accepted', qid: env.id, at, listener: env.listener, client: env.clientAddress, user: null, tls: null, helo: env.helo, sender: env.mailFrom, rcpts: env.rcptTo, mailbox: env.mailbox, account: env.account ?? null, messageId: null, size: env.size, subject: null };
}

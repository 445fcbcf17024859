/** What the status page shows and does, from the running relay's parts: the same code paths as the queue tools. */

import type { Readable } from 'node:stream';
import { acceptedRecord, type History } from '../history/history.js';
import type { HistoryQuery, MessageStory, MessageSummary } from '../history/types.js';
import type { Logger } from '../observability/logger.js';
import type { RelayMetrics } from '../observability/metrics.js';
import { deadLetterStats } from '../observability/queue-stats.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import { exportMessage } from '../spool/export.js';
import type { Spool } from '../spool/spool.js';
import type { DeviceView } from '../history/devices.js';
import type { MailboxRow, PageAction, QueueSummary, SpoolMessage, StatusSource, TraceAnswer } from '../web/source.js';
import type { ActiveSet } from './active-set.js';
import { handleControl } from './control.js';
import type { TraceLookup } from './trace.js';

/** Dead letters listed at most: the page is for a person, `queue list --dead` has them all. */
const MAX_DEAD = 500;

export interface RelayStatusDeps {
  spool: Spool;
  scheduler: Scheduler;
  /** The queue's active set: a message the page requeues joins it, as with `queue requeue`. */
  active: ActiveSet;
  metrics: RelayMetrics;
  history: History | null;
  trace: TraceLookup;
  log: Logger;
  now: () => number;
}

export class RelayStatus implements StatusSource {
  constructor(private readonly d: RelayStatusDeps) {}

  async summary(): Promise<QueueSummary> {
    const now = this.d.now();
    const q = this.d.metrics.queue.snapshot(now, 0);
    const dead = await deadLetterStats(this.d.spool.deadDir, now);
    const devices = this.d.history?.devices;
    return {
      queued: q.messages,
      oldestQueuedSeconds: q.oldestAgeSeconds,
      dead: dead.messages,
      oldestDeadSeconds: dead.oldestAgeSeconds,
      inFlight: this.d.scheduler.inFlight(),
      devices: devices?.size ?? 0,
      devicesSilent: devices?.silentCount(now) ?? 0,
      history: this.d.history !== null,
      now,
    };
  }

  async mailboxes(): Promise<MailboxRow[]> {
    const now = this.d.now();
    const queued = new Map(this.d.metrics.queue.snapshot(now, Number.MAX_SAFE_INTEGER).mailboxes.map((m) => [m.mailbox, m]));
    const rows = new Map<string, MailboxRow>();
    const row = (mailbox: string): MailboxRow => {
      let r = rows.get(mailbox);
      if (!r) {
        const q = queued.get(mailbox);
        const e = this.d.history?.mailboxErrors.get(mailbox);
        r = { mailbox, queued: q?.messages ?? 0, oldestSeconds: q?.oldestAgeSeconds ?? 0, inFlight: 0, pausedUntil: null, lastError: e?.error ?? null, lastErrorAt: e?.at ?? null };
        rows.set(mailbox, r);
      }
      return r;
    };
    for (const m of queued.keys()) row(m);
    for (const s of this.d.scheduler.mailboxStates()) {
      const r = row(s.mailbox);
      r.inFlight = s.inFlight;
      r.pausedUntil = s.pausedUntil > now ? s.pausedUntil : null;
    }
    for (const m of this.d.history?.mailboxErrors.keys() ?? []) row(m);
    return [...rows.values()].sort((a, b) => b.queued - a.queued || a.mailbox.localeCompare(b.mailbox));
  }

  async deadLetters(): Promise<SpoolMessage[]> {
    const ids = (await this.d.spool.ids('dead')).slice(-MAX_DEAD).reverse();
    const envs = await Promise.all(ids.map((id) => this.d.spool.readEnvelope('dead', id).catch(() => null)));
    const out: SpoolMessage[] = [];
    for (const env of envs) {
      if (!env) continue; // requeued or deleted since the readdir
      const e = env.lastError;
      out.push({ qid: env.id, receivedAt: env.receivedAt, mailbox: env.mailbox, sender: env.mailFrom, rcpts: env.rcptTo, size: env.size, attempts: env.attempts, lastError: e ? [e.status, e.code ?? e.reason, e.message].filter((x) => x !== undefined && x !== '').join(' ') : null });
    }
    return out;
  }

  async search(q: HistoryQuery): Promise<MessageSummary[]> {
    if (!this.d.history) throw new Error('the delivery history is off (history.enabled: false)');
    return this.d.history.search(q);
  }

  async story(qid: string): Promise<(MessageStory & { spool: 'queue' | 'dead' | null }) | null> {
    const s = (await this.d.history?.story(qid)) ?? null;
    const spool = (await this.d.spool.exists('queue', qid)) ? 'queue' : (await this.d.spool.exists('dead', qid)) ? 'dead' : null;
    if (s) return { ...s, spool };
    if (!spool) return null;
    // Not in the history (it is off, or the message came before it): the spool's envelope tells the start.
    const env = await this.d.spool.readEnvelope(spool, qid);
    const at = Date.parse(env.receivedAt);
    const lastError = env.lastError ? `${env.lastError.status ?? ''} ${env.lastError.code ?? env.lastError.reason}`.trim() : null;
    const { t: _t, ...accepted } = acceptedRecord(env, at);
    return { ...accepted, account: accepted.account ?? null, state: spool === 'dead' ? 'dead' : 'queued', stateAt: at, attempts: env.attempts, lastError, events: [], spool };
  }

  devices(): DeviceView[] {
    return this.d.history?.devices.list(this.d.now()) ?? [];
  }

  /** The queue tools' own handler, so the page and `smtp-graph-relay queue …` do exactly the same thing. */
  async act(action: PageAction, qid: string, by: string): Promise<{ ok: boolean; message: string }> {
    const deps = { spool: this.d.spool, scheduler: this.d.scheduler, active: this.d.active, metrics: this.d.metrics, log: this.d.log, now: this.d.now, history: this.d.history, by };
    const dead = await this.d.spool.exists('dead', qid);
    const res =
      action === 'delete'
        ? await handleControl(deps, { op: 'delete', ids: [qid], dead })
        : action === 'requeue' || dead
          ? await handleControl(deps, { op: 'requeue', ids: [qid] })
          : await handleControl(deps, { op: 'retry', ids: [qid] });
    const skipped = res.skipped?.[qid];
    return { ok: res.ok && res.count > 0, message: skipped ? `${qid}: ${skipped}` : res.count > 0 ? `${qid}: ${res.message}` : `${qid}: nothing to do (not queued)` };
  }

  async eml(qid: string): Promise<{ size: number; open(): Readable } | null> {
    return exportMessage(this.d.spool, qid);
  }

  async trace(qid: string): Promise<TraceAnswer> {
    return this.d.trace.lookup((await this.d.history?.story(qid)) ?? null);
  }
}

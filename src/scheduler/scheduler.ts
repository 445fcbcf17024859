/** The scheduler: when each queued message is tried, within per-mailbox and global in-flight limits. */

import type { AttemptOutcome, Scheduled } from './scheduled.js';
import { newMailbox, slowDown, succeeded, throttleBackoff, type MailboxState } from './mailbox.js';
import { HeldMessages } from './held.js';
import { OutageBreaker } from './outage.js';
import { WakeTimer } from './wake-timer.js';
import { askFleet, wakeWaiting } from './slots.js';
import type { AttemptRunner, SchedulerOptions } from './options.js';

export type { AttemptRunner, SchedulerOptions } from './options.js';

export class Scheduler {
  private readonly mailboxes = new Map<string, MailboxState>();
  private readonly byId = new Map<string, Scheduled>();
  private readonly inFlightIds = new Set<string>();
  /** Messages whose last attempt failed without reaching Graph (`hold`): they wait for the outage (held.ts). */
  private readonly held = new HeldMessages((msg) => this.mailbox(msg.mailbox, msg.account), () => this.mailboxes.values());
  /** When an attempt last ended for good (delivered, or failed for good): an outage began after it. */
  private lastDoneAt = 0;
  private globalInFlight = 0;
  /** Attempts not yet finished, released or not: what stop() waits for. */
  private running = 0;
  /** The next wake-up of pump(): one timer, moved only to an earlier time. */
  private readonly wake = new WakeTimer(() => this.pump(), () => this.now(), () => this.stopped);
  private pumpQueued = false;
  private stopped = false;
  private rr = 0;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly now: () => number;
  private readonly random: () => number;
  readonly intervalMs: number;
  private readonly outage: OutageBreaker;
  private readonly onPause: NonNullable<SchedulerOptions['onPause']>;

  constructor(
    private readonly opts: SchedulerOptions,
    private readonly run: AttemptRunner,
  ) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    const onOutage = opts.onOutage ?? (() => undefined);
    this.outage = new OutageBreaker((pauseMs, failures) => {
      const held = this.held.size;
      // From finish(), which then pumps: what the closing released starts at once.
      if (pauseMs > 0) this.held.opened(this.now(), this.lastDoneAt);
      else this.held.closed(this.now());
      onOutage(pauseMs, failures, held);
    }, opts.outageProbeIntervalMs);
    this.onPause = opts.onPause ?? (() => undefined);
    this.intervalMs = opts.messagesPerMinute > 0 ? 60_000 / opts.messagesPerMinute : 0;
    opts.slots?.onFreed((account, mailbox) => wakeWaiting(this.mailboxes, account, mailbox) && this.schedulePump());
  }

  /** One state per (account, mailbox): two tenants' mailboxes are throttled apart, whatever their names. */
  private mailbox(name: string, account: string): MailboxState {
    const key = `${account}\u0000${name}`;
    let m = this.mailboxes.get(key);
    if (!m) {
      m = newMailbox(name, account, this.opts.perMailboxConcurrency);
      this.mailboxes.set(key, m);
    }
    return m;
  }

  /** Adds (or re-adds) a message. A message already known is left where it is. */
  add(id: string, mailbox: string, dueAt: number, account = 'default'): void {
    if (this.byId.has(id)) return;
    const msg: Scheduled = { id, mailbox: mailbox.toLowerCase(), account, dueAt };
    this.byId.set(id, msg);
    this.mailbox(msg.mailbox, account).ready.push(msg);
    this.schedulePump();
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** Forgets a waiting message (deleted by a queue tool). One in flight finishes its attempt. */
  remove(id: string): boolean {
    const msg = this.byId.get(id);
    if (!msg || this.inFlightIds.has(id)) return false;
    this.mailbox(msg.mailbox, msg.account).ready.remove((m) => m.id === id);
    this.byId.delete(id);
    this.held.delete(msg);
    this.opts.onForget?.(id);
    return true;
  }

  /** Makes waiting messages due now and lifts pauses of their mailboxes ("retry now"). */
  retryNow(filter: (msg: Scheduled) => boolean): number {
    let n = 0;
    const now = this.now();
    for (const m of this.mailboxes.values()) {
      const all = m.ready.toArray();
      const hits = all.filter(filter);
      if (hits.length === 0) continue;
      for (const msg of hits) msg.dueAt = now;
      n += hits.length;
      m.ready.replaceAll(all);
      m.pausedUntil = 0;
    }
    this.schedulePump();
    return n;
  }

  size(): number {
    return this.byId.size;
  }

  inFlight(): number {
    return this.globalInFlight;
  }

  /** Each mailbox's state for the status page: waiting, in flight, paused until (0: not paused). */
  mailboxStates(): { mailbox: string; waiting: number; inFlight: number; pausedUntil: number }[] {
    return [...this.mailboxes.values()].map((m) => ({ mailbox: m.name, waiting: m.ready.size, inFlight: m.inFlight, pausedUntil: m.pausedUntil }));
  }

  /** Messages held by an outage (their last attempt did not reach Graph). */
  heldCount(): number {
    return this.held.size;
  }
  /** Stops starting attempts; resolves when the ones in flight have finished. */
  stop(): Promise<void> {
    this.stopped = true;
    this.wake.clear();
    return this.idle();
  }

  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedulePump(): void {
    if (this.pumpQueued || this.stopped) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /** Starts every attempt that is due and allowed, round-robin across mailboxes; sets the next wake-up. */
  private pump(): void {
    if (this.stopped) return;
    const now = this.now();
    let wake = Infinity;
    const boxes = [...this.mailboxes.values()];
    if (boxes.length === 0) return;
    // Graph unreachable: nothing starts until the pause ends, then one probe at a time until one gets an answer.
    if (this.outage.until > now) {
      this.wake.at(this.outage.until);
      return;
    }
    const limit = this.outage.probing ? 1 : this.opts.globalConcurrency;
    let progressed = true;
    // Round-robin, one start per mailbox per pass, so a mailbox with 10,000 due messages cannot
    // take the global slots from one with a single message.
    while (progressed && this.globalInFlight < limit) {
      progressed = false;
      for (let k = 0; k < boxes.length && this.globalInFlight < limit; k++) {
        const m = boxes[(this.rr + k) % boxes.length]!;
        const head = m.ready.peek();
        if (!head) continue;
        if (m.pausedUntil > now) {
          wake = Math.min(wake, m.pausedUntil);
          continue;
        }
        if (m.inFlight >= Math.min(m.window, this.opts.perMailboxConcurrency)) continue;
        if (m.slotWaitUntil > now) {
          wake = Math.min(wake, m.slotWaitUntil);
          continue;
        }
        if (head.dueAt > now) {
          wake = Math.min(wake, head.dueAt);
          continue;
        }
        if (this.intervalMs > 0 && m.nextStartAt > now) {
          wake = Math.min(wake, m.nextStartAt);
          continue;
        }
        m.ready.pop();
        this.start(m, head, now);
        progressed = true;
      }
    }
    this.rr = (this.rr + 1) % Math.max(1, boxes.length);
    // Forget idle mailboxes so the map stays as small as the work.
    for (const m of boxes) {
      if (m.ready.size === 0 && m.unfinished === 0 && m.pausedUntil <= now) this.mailboxes.delete(`${m.account}\u0000${m.name}`);
    }
    this.wake.at(wake);
  }

  private start(m: MailboxState, msg: Scheduled, now: number): void {
    m.inFlight++;
    m.unfinished++;
    this.globalInFlight++;
    this.running++;
    this.inFlightIds.add(msg.id);
    const paced = m.nextStartAt;
    this.held.delete(msg);
    if (this.intervalMs > 0) m.nextStartAt = Math.max(now, m.nextStartAt) + this.intervalMs;
    if (!this.opts.slots) return this.launch(m, msg, now, () => undefined);
    // Counted as in flight while the fleet is asked, so this relay's own limits hold meanwhile.
    askFleet(this.opts.slots, m, msg, paced, {
      stopped: () => this.stopped,
      launch: (release) => this.launch(m, msg, now, release),
      undo: () => {
        this.globalInFlight--;
        this.running--;
        this.inFlightIds.delete(msg.id);
        if (this.running === 0) this.idleWaiters.splice(0).forEach((w) => w());
      },
      pump: () => this.schedulePump(),
    });
  }

  private launch(m: MailboxState, msg: Scheduled, now: number, releaseSlot: () => void): void {
    const seq = this.outage.start();
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      m.inFlight--;
      this.globalInFlight--;
      releaseSlot();
      m.slotWaitUntil = 0; // a slot of this mailbox is free: one waiting for the fleet may take it
      this.schedulePump();
    };
    this.run(msg, release)
      .catch((): AttemptOutcome => ({ kind: 'retry', dueAt: this.now() + 60_000 }))
      .then((outcome) => {
        // A throttle's pause is set (and told to the fleet) before its slot is given back.
        if (outcome.kind !== 'throttled' && outcome.kind !== 'blocked') release();
        this.finish(m, msg, outcome, now, seq);
        release();
      });
  }

  private finish(m: MailboxState, msg: Scheduled, outcome: AttemptOutcome, startedAt: number, seq: number): void {
    this.running--;
    m.unfinished--;
    this.inFlightIds.delete(msg.id);
    const now = this.now();
    if (outcome.kind === 'done') this.lastDoneAt = now;
    this.outage.ended(outcome.kind === 'retry' && outcome.unreachable === true, now, seq);
    for (const next of outcome.enqueue ?? []) this.add(next.id, next.mailbox, now, next.account);
    switch (outcome.kind) {
      case 'done':
        this.byId.delete(msg.id);
        this.opts.onForget?.(msg.id);
        succeeded(m, startedAt, this.opts.perMailboxConcurrency);
        break;
      case 'retry':
        if (outcome.hold) {
          // Not the message's failure: it waits for Graph, due as soon as the breaker lets it through.
          this.held.add(msg);
          msg.dueAt = this.outage.open ? now : outcome.dueAt;
        } else msg.dueAt = outcome.dueAt;
        m.ready.push(msg);
        break;
      case 'throttled': {
        m.consecutiveThrottles++;
        const ms = outcome.retryAfterMs ?? throttleBackoff(m, this.opts, this.random);
        this.pauseMailbox(m, now + ms, outcome.retryAfterMs !== null ? 'retry-after' : 'backoff', now);
        slowDown(m, now);
        msg.dueAt = m.pausedUntil;
        m.ready.push(msg);
        break;
      }
      case 'blocked':
        this.pauseMailbox(m, outcome.until, 'blocked', now);
        slowDown(m, now);
        msg.dueAt = outcome.until;
        m.ready.push(msg);
        break;
    }
    if (this.running === 0) this.idleWaiters.splice(0).forEach((w) => w());
    this.schedulePump();
  }

  /** `now` is the caller's: a pause of Retry-After seconds is reported as exactly that long. */
  private pauseMailbox(m: MailboxState, until: number, reason: 'retry-after' | 'backoff' | 'blocked', now: number): void {
    if (until <= m.pausedUntil) return;
    m.pausedUntil = until;
    this.opts.slots?.paused(m.account, m.name, until);
    m.pauseReason = reason;
    m.pausedAt = now;
    this.onPause(m.name, until - now, reason, m.account);
  }
}

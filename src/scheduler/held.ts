/**
 * Messages held by an outage: their last attempt failed without reaching Graph (no connection, no token),
 * so they wait for Graph, not for a timer of their own. While the breaker is open they are due at once
 * (the breaker gates them); when it closes they are all due now, and the backoff pauses of mailboxes that
 * began in the outage are lifted (throttles without Retry-After since the last success were Graph failing too).
 */

import type { MailboxState } from './mailbox.js';
import type { Scheduled } from './scheduled.js';

export class HeldMessages {
  private readonly held = new Set<Scheduled>();
  /** When the outage the breaker is open for began; 0 while it is closed. */
  private outageStartedAt = 0;

  constructor(
    private readonly mailboxOf: (msg: Scheduled) => MailboxState,
    private readonly mailboxes: () => Iterable<MailboxState>,
  ) {}

  get size(): number {
    return this.held.size;
  }

  add(msg: Scheduled): void {
    this.held.add(msg);
  }

  delete(msg: Scheduled): void {
    this.held.delete(msg);
  }

  /** The breaker opened (or escalated): the first time, held messages with timers of their own become due now. */
  opened(now: number, lastDoneAt: number): void {
    if (this.outageStartedAt !== 0) return;
    this.outageStartedAt = Math.max(1, lastDoneAt);
    this.dueNow(this.held, now);
  }

  /** The breaker closed: everything held is due now, and the outage's backoff pauses end. */
  closed(now: number): void {
    const since = this.outageStartedAt;
    this.outageStartedAt = 0;
    this.dueNow(this.held, now);
    this.held.clear();
    for (const m of this.mailboxes()) {
      if (m.pauseReason !== 'backoff' || m.pausedUntil <= now || m.pausedAt < since) continue;
      const until = m.pausedUntil;
      m.pausedUntil = 0;
      m.pauseReason = null;
      m.consecutiveThrottles = 0;
      const all = m.ready.toArray();
      // The throttled messages were set to the pause's end; others keep their own times.
      for (const msg of all) if (msg.dueAt === until) msg.dueAt = now;
      m.ready.replaceAll(all);
    }
  }

  /** Makes these waiting messages due now, reordering the heaps of their mailboxes. */
  private dueNow(msgs: Iterable<Scheduled>, now: number): void {
    const touched = new Set<MailboxState>();
    for (const msg of msgs) {
      if (msg.dueAt <= now) continue;
      msg.dueAt = now;
      touched.add(this.mailboxOf(msg));
    }
    for (const m of touched) m.ready.replaceAll(m.ready.toArray());
  }
}

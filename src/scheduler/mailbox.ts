/** One mailbox's part of the scheduler: its waiting messages, its slots, its pause and its window after a throttle. */

import { MinHeap } from './heap.js';
import type { Scheduled } from './scheduled.js';

export interface MailboxState {
  name: string;
  account: string;
  ready: MinHeap<Scheduled>;
  /** Attempts holding a Graph slot (released when Graph answers). */
  inFlight: number;
  /**
   * Attempts started and not yet finished, released or not. The mailbox is kept while any is unfinished:
   * forgotten in between, a new message would create a second state and the retry would go to the lost one.
   */
  unfinished: number;
  pausedUntil: number;
  /** Why and when the current pause began: a backoff pause that began in an outage is lifted when it ends. */
  pauseReason: 'retry-after' | 'backoff' | 'blocked' | null;
  pausedAt: number;
  /** Allowed in flight now; drops to 1 after a throttle and grows back by one per success (slow start). */
  window: number;
  consecutiveThrottles: number;
  /** When the last throttle answer came: only attempts started after it may grow the window again. */
  throttledAt: number;
  nextStartAt: number;
  /** The fleet said no slot (src/scheduler/slots.ts): nothing starts before this, or before a slot frees. */
  slotWaitUntil: number;
}

export function newMailbox(name: string, account: string, perMailboxConcurrency: number): MailboxState {
  return {
    name,
    account,
    ready: new MinHeap<Scheduled>((a, b) => a.dueAt - b.dueAt || (a.id < b.id ? -1 : 1)),
    inFlight: 0,
    unfinished: 0,
    pausedUntil: 0,
    pauseReason: null,
    pausedAt: 0,
    window: perMailboxConcurrency,
    consecutiveThrottles: 0,
    throttledAt: 0,
    nextStartAt: 0,
    slotWaitUntil: 0,
  };
}

/** A success opens the window by one, back to the limit; successes of attempts sent before the throttle prove nothing about the mailbox now. */
export function succeeded(m: MailboxState, startedAt: number, perMailboxConcurrency: number): void {
  if (startedAt < m.throttledAt) return;
  m.consecutiveThrottles = 0;
  if (m.window < perMailboxConcurrency) m.window++;
}

/** After a throttle or a block: one request in flight, growing back one per success (slow start). */
export function slowDown(m: MailboxState, now: number): void {
  m.window = 1;
  m.throttledAt = now;
}

/** A throttle without Retry-After: the base doubling per throttle in a row, capped, ±50 % jitter. */
export function throttleBackoff(m: MailboxState, opts: { throttleBackoffBaseMs: number; throttleBackoffMaxMs: number }, random: () => number): number {
  const backoff = Math.min(opts.throttleBackoffMaxMs, opts.throttleBackoffBaseMs * 2 ** (m.consecutiveThrottles - 1));
  return Math.round(backoff * (0.5 + random()));
}

/**
 * The fleet's say on an attempt: before the scheduler starts one for (account, mailbox) it asks for a slot,
 * and gives it back as soon as Graph has answered. Several replicas keep Graph's per-mailbox limits together
 * this way (src/fleet/). Without one, the scheduler's own limits are the whole story: that is the
 * single-relay behaviour, unchanged.
 */

import type { MailboxState } from './mailbox.js';
import type { Scheduled } from './scheduled.js';

export type SlotAnswer =
  /** Go: `release` gives the slot back (idempotent). */
  | { granted: true; release: () => void }
  /** Not now: the mailbox waits until `retryAt` (ms since the epoch), or until `onFreed` says a slot freed. */
  | { granted: false; retryAt: number };

export interface MailboxSlots {
  /** Asks for one slot of (account, mailbox). Resolves within a bounded time and never rejects. */
  acquire(account: string, mailbox: string): Promise<SlotAnswer>;
  /** A throttle or a block paused the mailbox until `until` (ms since the epoch): the fleet should know. */
  paused(account: string, mailbox: string, until: number): void;
  /** Registers the scheduler's wake-up: a slot of (account, mailbox) may have freed, here or elsewhere; no mailbox: any may start again. */
  onFreed(listener: (account?: string, mailbox?: string) => void): void;
}

/** onFreed: the mailbox (or, without one, every mailbox) waiting for the fleet may try again; true if any was waiting. */
export function wakeWaiting(mailboxes: ReadonlyMap<string, MailboxState>, account?: string, mailbox?: string): boolean {
  let woke = false;
  for (const m of account === undefined ? mailboxes.values() : [mailboxes.get(`${account}\u0000${mailbox}`)]) {
    if (m && m.slotWaitUntil > 0) {
      m.slotWaitUntil = 0;
      woke = true;
    }
  }
  return woke;
}

/** A start the fleet refused (or granted after the stop) is undone in its mailbox: the message waits again, its pacing slot given back. */
export function unstart(m: MailboxState, msg: Scheduled, pacedAt: number, answer: SlotAnswer): void {
  if (answer.granted) answer.release();
  m.inFlight--;
  m.unfinished--;
  m.nextStartAt = pacedAt;
  m.ready.push(msg);
  if (!answer.granted) m.slotWaitUntil = Math.max(m.slotWaitUntil, answer.retryAt);
}

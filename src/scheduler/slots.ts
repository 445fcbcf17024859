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

/** What askFleet needs of the scheduler. */
export interface AskingScheduler {
  stopped(): boolean;
  /** Granted: the attempt starts, with the slot's release. */
  launch(release: () => void): void;
  /** Refused (or granted after the stop): the scheduler's own counts are undone. */
  undo(): void;
  pump(): void;
}

/**
 * Asks the fleet for a slot of `m` for `msg`, then starts the attempt or puts the message back. One question
 * per mailbox at a time (the others would mostly be refused): `slotWaitUntil` is Infinity meanwhile, and the
 * answer pumps again, so the mailbox's next message asks then.
 */
export function askFleet(slots: MailboxSlots, m: MailboxState, msg: Scheduled, pacedAt: number, s: AskingScheduler): void {
  m.slotWaitUntil = Infinity;
  void slots.acquire(m.account, m.name).then((answer) => {
    if (m.slotWaitUntil === Infinity) m.slotWaitUntil = 0;
    if (answer.granted && !s.stopped()) s.launch(answer.release);
    else {
      if (answer.granted) answer.release();
      // The message waits again, its pacing slot given back; refused, the mailbox waits for retryAt or a freed slot.
      m.inFlight--;
      m.unfinished--;
      m.nextStartAt = pacedAt;
      m.ready.push(msg);
      if (!answer.granted) m.slotWaitUntil = Math.max(m.slotWaitUntil, answer.retryAt);
      s.undo();
    }
    s.pump();
  });
}

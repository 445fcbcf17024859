/** What a scheduler is made with: its limits, its clock, the runner of one attempt and whom it tells. */

import type { AttemptOutcome, Scheduled } from './scheduled.js';
import type { MailboxSlots } from './slots.js';

export interface SchedulerOptions {
  perMailboxConcurrency: number;
  globalConcurrency: number;
  /** 0 = no pacing. */
  messagesPerMinute: number;
  throttleBackoffBaseMs: number;
  throttleBackoffMaxMs: number;
  /** The outage breaker's longest pause between probes (delivery.retry.outageProbeInterval); default 1 s. */
  outageProbeIntervalMs?: number;
  now?: () => number;
  random?: () => number;
  /** Called when the outage breaker opens (pauseMs > 0) or closes (0), with the messages held (closing: released); for logs. */
  onOutage?: (pauseMs: number, failures: number, held: number) => void;
  /** Called when a message leaves the scheduler (its attempt ended for good, or a queue tool removed it). */
  onForget?: (id: string) => void;
  /** Called when a mailbox gets paused, with the pause length; for logs and metrics. */
  onPause?: (mailbox: string, ms: number, reason: 'retry-after' | 'backoff' | 'blocked', account: string) => void;
  /** Slots shared with other replicas (src/fleet/); none: this relay's own limits only. */
  slots?: MailboxSlots;
}

/**
 * Runs one attempt. `release` frees the message's mailbox and global slots as soon as Graph has answered,
 * before the spool bookkeeping ends, so the slot is held exactly as long as Graph holds the request. A
 * runner must not release on a throttle: the mailbox pause is only set when the attempt finishes.
 */
export type AttemptRunner = (msg: Scheduled, release: () => void) => Promise<AttemptOutcome>;

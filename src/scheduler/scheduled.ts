/** What the scheduler holds (a message due at a time, for a mailbox) and what an attempt tells it back. */

export interface Scheduled {
  id: string;
  /** Lower-case mailbox UPN: the unit Graph throttles by. */
  mailbox: string;
  /** The Graph account that sends it: limits and pauses are per (account, mailbox). */
  account: string;
  dueAt: number;
}

/** What one attempt asks of the scheduler next; `enqueue` adds messages it created (delivery status notifications). */
export type AttemptOutcome = (
  | { kind: 'done' }
  /**
   * `unreachable`: no answer from Graph or Entra ID at all (connection failed, no token): counts toward the
   * outage breaker. `hold`: the failure was not the message's own (nothing reached Graph): the message is
   * held by the outage, due again as soon as the breaker lets attempts through and released when it closes;
   * `dueAt` applies only while the breaker stays closed (an isolated failure keeps its normal timer).
   */
  | { kind: 'retry'; dueAt: number; unreachable?: boolean; hold?: boolean }
  /** Throttled: pause the whole mailbox (Retry-After, or the scheduler's own backoff) and retry then. */
  | { kind: 'throttled'; retryAfterMs: number | null }
  /** The mailbox is blocked for a long time (quota): pause it until `until`. */
  | { kind: 'blocked'; until: number }
) & { enqueue?: readonly { id: string; mailbox: string; account?: string }[] };

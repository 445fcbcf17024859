/** delivery.unknownOutcome: how long an attempt whose outcome is unknown is looked for in Sent Items before the message is sent again. */

import type { Reader } from './reader.js';

export interface UnknownOutcomeConfig {
  /**
   * Look-ups in the sending mailbox's Sent Items, `intervalMs` apart, the first `intervalMs` after the outcome
   * became unknown; not found by the last one, the message is sent again. 0: no look-up, sent again at once.
   */
  lookups: number;
  intervalMs: number;
}

export function readUnknownOutcome(r: Reader): UnknownOutcomeConfig {
  const cfg = { lookups: r.int('lookups', 6, 0, 100), intervalMs: r.duration('interval', 10_000, 100, 3_600_000) };
  r.done();
  return cfg;
}

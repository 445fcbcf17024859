/**
 * A relay-wide breaker: when Graph (or Entra ID) cannot be reached at all, trying every queued and newly
 * accepted message only burns CPU and memory on failing handshakes. After THRESHOLD unreachable attempts in
 * a row, nothing starts for a while (1 s, doubling up to `maxPauseMs`), then a single probe; the first
 * answer of any kind closes the breaker.
 *
 * The cap is what bounds the wait after Graph returns: the probe that finds it back starts at most one
 * pause after it returned (delivery.retry.outageProbeInterval, 1 s by default), so it stays short.
 */

const THRESHOLD = 5;
const PAUSE_BASE_MS = 1000;
export const DEFAULT_OUTAGE_PROBE_INTERVAL_MS = 1000;

export class OutageBreaker {
  private unreachableInARow = 0;
  private level = 0;
  /** Nothing starts before this time. */
  until = 0;
  /** After a pause, one attempt at a time until one gets an answer. */
  probing = false;
  /** Attempts are numbered as they start; failures of those started before the breaker opened are ignored. */
  private started = 0;
  private openedAt = 0;

  constructor(
    private readonly onChange: (pauseMs: number, failures: number) => void,
    private readonly maxPauseMs = DEFAULT_OUTAGE_PROBE_INTERVAL_MS,
  ) {}

  /** Open (pausing) or probing: Graph is taken to be unreachable until an attempt gets an answer. */
  get open(): boolean {
    return this.probing;
  }

  /** Numbers an attempt as it starts. */
  start(): number {
    return ++this.started;
  }

  /** An attempt numbered `seq` ended: without any answer (`unreachable`), or with one. */
  ended(unreachable: boolean, now: number, seq: number): void {
    if (unreachable) {
      // Failures of attempts sent before the breaker opened say nothing new.
      if (this.probing && seq < this.openedAt) return;
      this.unreachableInARow++;
      if (this.probing || this.unreachableInARow >= THRESHOLD) {
        this.level++;
        const pause = Math.min(this.maxPauseMs, PAUSE_BASE_MS * 2 ** Math.min(this.level - 1, 30));
        this.until = now + pause;
        this.openedAt = this.started + 1;
        this.probing = true;
        this.onChange(pause, this.unreachableInARow);
      }
      return;
    }
    this.unreachableInARow = 0;
    if (this.probing) {
      this.probing = false;
      this.level = 0;
      this.until = 0;
      this.onChange(0, 0);
    }
  }
}

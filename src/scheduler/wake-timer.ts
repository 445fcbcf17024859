/** The scheduler's next wake-up: one timer, moved only to an earlier time, none once stopped. */

export class WakeTimer {
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;

  constructor(
    private readonly fire: () => void,
    private readonly now: () => number,
    private readonly stopped: () => boolean,
  ) {}

  /** Wakes at `at` (ms since the epoch) unless an earlier wake-up is set; Infinity: no wake-up needed. */
  at(at: number): void {
    if (at === Infinity || this.stopped()) return;
    if (this.timer && at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.timerAt = Infinity;
        this.fire();
      },
      Math.max(0, at - this.now()),
    );
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }
}

/** Graph's upload budget per mailbox (150 MB per 5 minutes), tracked in a sliding window so the relay waits instead of being throttled. */

export type BudgetDecision = { ok: true } | { ok: false; retryAfterMs: number };

export class UploadBudget {
  private readonly used = new Map<string, { at: number; bytes: number }[]>();

  constructor(
    private readonly limitBytes: number,
    private readonly windowMs: number,
  ) {}

  private entries(mailbox: string, now: number): { at: number; bytes: number }[] {
    const key = mailbox.toLowerCase();
    const list = (this.used.get(key) ?? []).filter((e) => e.at + this.windowMs > now);
    if (list.length) this.used.set(key, list);
    else this.used.delete(key);
    return list;
  }

  /**
   * Reserves `bytes` for a message about to be uploaded. A message bigger than the whole budget goes when
   * the window is empty, or it could never go. Reserved bytes are not returned on failure: Graph counted them.
   */
  reserve(mailbox: string, bytes: number, now = Date.now()): BudgetDecision {
    const list = this.entries(mailbox, now);
    const inWindow = list.reduce((s, e) => s + e.bytes, 0);
    if (inWindow === 0 || inWindow + bytes <= this.limitBytes) {
      list.push({ at: now, bytes });
      this.used.set(mailbox.toLowerCase(), list);
      return { ok: true };
    }
    // The earliest moment enough of the window has slid out for this message to fit.
    let remaining = inWindow;
    for (const e of list) {
      remaining -= e.bytes;
      if (remaining === 0 || remaining + bytes <= this.limitBytes) return { ok: false, retryAfterMs: Math.max(1, e.at + this.windowMs - now) };
    }
    return { ok: false, retryAfterMs: this.windowMs };
  }
}

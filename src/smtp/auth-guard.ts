/** Failed-login throttling: a growing delay per failure and a lockout per client address. */

export interface AuthGuardOptions {
  failuresBeforeLockout: number;
  lockoutMs: number;
  /** Delay after the first failure; it grows by this much per further failure. */
  failureDelayMs: number;
}

interface Entry {
  failures: number;
  lastFailure: number;
  lockedUntil: number;
}

/** Bounds the table so that a spray of addresses cannot grow memory without limit. */
const MAX_ENTRIES = 10_000;
/** The delay stops growing here so a client cannot pin a session for minutes. */
const MAX_DELAY_STEPS = 10;

export class AuthGuard {
  private readonly entries = new Map<string, Entry>();
  constructor(private readonly opts: AuthGuardOptions) {}

  /** Milliseconds the address stays locked out, 0 when it may try. */
  lockedFor(address: string, now = Date.now()): number {
    const e = this.entries.get(address);
    if (!e) return 0;
    if (e.lockedUntil > now) return e.lockedUntil - now;
    if (now - e.lastFailure > this.opts.lockoutMs) this.entries.delete(address);
    return 0;
  }

  /** Records a failure; says how long to wait before answering, and whether the address is now locked. */
  failure(address: string, now = Date.now()): { delayMs: number; locked: boolean; failures: number } {
    let e = this.entries.get(address);
    if (!e || (e.lockedUntil <= now && now - e.lastFailure > this.opts.lockoutMs)) {
      e = { failures: 0, lastFailure: now, lockedUntil: 0 };
    }
    this.entries.delete(address); // re-insert: Map order is then least recently failed first
    e.failures++;
    e.lastFailure = now;
    const locked = e.failures >= this.opts.failuresBeforeLockout;
    if (locked) e.lockedUntil = now + this.opts.lockoutMs;
    this.entries.set(address, e);
    if (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    return { delayMs: this.opts.failureDelayMs * Math.min(e.failures, MAX_DELAY_STEPS), locked, failures: e.failures };
  }

  success(address: string): void {
    this.entries.delete(address);
  }
}

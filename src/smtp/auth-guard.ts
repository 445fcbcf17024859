/** Failed-login throttling: a growing delay per failure and a lockout per client address, counting attempts as they start. */

export interface AuthGuardOptions {
  failuresBeforeLockout: number;
  lockoutMs: number;
  /** Delay after the first failure; it grows by this much per further failure. */
  failureDelayMs: number;
}

interface Entry {
  failures: number;
  /** Attempts whose password check is still running: they count as failures until their verdict says otherwise. */
  pending: number;
  lastFailure: number;
  lockedUntil: number;
}

/** Why an attempt may not start: the address is locked out, or its allowance is taken by attempts still being checked. */
export type AuthStart = { ok: true } | { ok: false; reason: 'locked'; ms: number } | { ok: false; reason: 'busy' };

/** Bounds the table so that a spray of addresses cannot grow memory without limit. */
const MAX_ENTRIES = 10_000;
/** The delay stops growing here so a client cannot pin a session for minutes. */
const MAX_DELAY_STEPS = 10;

/**
 * A password check takes tens of milliseconds (scrypt), so attempts sent in parallel would all be checked
 * before the first failure is recorded. Each attempt is therefore counted when it starts (`start`), and one
 * may start only while failures plus attempts under way stay below the lockout threshold: parallel guessing
 * gets exactly as many tries as sequential guessing.
 */
export class AuthGuard {
  private readonly entries = new Map<string, Entry>();
  constructor(private readonly opts: AuthGuardOptions) {}

  /** Milliseconds the address stays locked out, 0 when it may try. */
  lockedFor(address: string, now = Date.now()): number {
    const e = this.entries.get(address);
    if (!e) return 0;
    if (e.lockedUntil > now) return e.lockedUntil - now;
    if (e.pending === 0 && now - e.lastFailure > this.opts.lockoutMs) this.entries.delete(address);
    return 0;
  }

  /** Reserves one attempt; every reservation that succeeds must end in exactly one `failure` or `success`. */
  start(address: string, now = Date.now()): AuthStart {
    const locked = this.lockedFor(address, now);
    if (locked > 0) return { ok: false, reason: 'locked', ms: locked };
    let e = this.entries.get(address);
    if (e && e.pending === 0 && now - e.lastFailure > this.opts.lockoutMs) e = undefined;
    e ??= { failures: 0, pending: 0, lastFailure: now, lockedUntil: 0 };
    if (e.failures + e.pending >= this.opts.failuresBeforeLockout) return { ok: false, reason: 'busy' };
    e.pending++;
    this.touch(address, e);
    return { ok: true };
  }

  /** Ends a reservation as a failure; says how long to wait before answering, and whether the address is now locked. */
  failure(address: string, now = Date.now()): { delayMs: number; locked: boolean; failures: number } {
    let e = this.entries.get(address);
    if (!e) e = { failures: 0, pending: 1, lastFailure: now, lockedUntil: 0 };
    else if (e.pending === 0 && e.lockedUntil <= now && now - e.lastFailure > this.opts.lockoutMs) e.failures = 0;
    e.pending = Math.max(0, e.pending - 1);
    e.failures++;
    e.lastFailure = now;
    const locked = e.failures >= this.opts.failuresBeforeLockout;
    if (locked) e.lockedUntil = Math.max(e.lockedUntil, now + this.opts.lockoutMs);
    this.touch(address, e);
    return { delayMs: this.opts.failureDelayMs * Math.min(e.failures, MAX_DELAY_STEPS), locked, failures: e.failures };
  }

  /** Ends a reservation as a success: the address's failures are forgotten, attempts still under way still count. */
  success(address: string): void {
    const e = this.entries.get(address);
    if (!e) return;
    e.pending = Math.max(0, e.pending - 1);
    e.failures = 0;
    e.lockedUntil = 0;
    if (e.pending === 0) this.entries.delete(address);
  }

  /** Ends a reservation without a verdict (the check itself failed): it no longer counts. */
  release(address: string): void {
    const e = this.entries.get(address);
    if (e) e.pending = Math.max(0, e.pending - 1);
  }

  /** Re-inserts the entry: Map order is then least recently used first, which is what is evicted. */
  private touch(address: string, e: Entry): void {
    this.entries.delete(address);
    this.entries.set(address, e);
    if (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
  }
}

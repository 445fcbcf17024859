/**
 * Leases a replica released in this turn of the event loop, kept until its end: the scheduler's next attempt
 * for the same mailbox, started in the same turn, takes one over with no Redis round trip and no wake-up of
 * the other replicas. What no attempt took over goes back to the fleet (setImmediate). A mailbox the fleet
 * paused (a pause this replica set, or one another published) takes over nothing.
 */

interface Kept {
  account: string;
  mailbox: string;
  leases: Set<string>;
}

export class KeptLeases {
  private readonly kept = new Map<string, Kept>();
  private flush: NodeJS.Immediate | null = null;
  /** Pauses known here, per key: until when (this replica's clock). */
  private readonly pausedUntil = new Map<string, number>();

  constructor(
    private readonly giveBack: (key: string, account: string, mailbox: string, id: string) => void,
    private readonly now: () => number,
  ) {}

  keep(key: string, account: string, mailbox: string, id: string): void {
    let k = this.kept.get(key);
    if (!k) this.kept.set(key, (k = { account, mailbox, leases: new Set() }));
    k.leases.add(id);
    this.flush ??= setImmediate(() => this.giveBackAll());
  }

  /** A kept lease of this mailbox, unless the mailbox is paused. */
  take(key: string): string | null {
    const k = this.kept.get(key);
    if (!k || (this.pausedUntil.get(key) ?? 0) > this.now()) return null;
    const id = k.leases.values().next().value ?? null;
    if (id !== null) k.leases.delete(id);
    return id;
  }

  paused(key: string, ms: number): void {
    const now = this.now();
    this.pausedUntil.set(key, now + ms);
    if (this.pausedUntil.size > 10_000) for (const [k, t] of this.pausedUntil) if (t <= now) this.pausedUntil.delete(k);
  }

  /** What no attempt took over goes back now (also at close). */
  giveBackAll(): void {
    if (this.flush) clearImmediate(this.flush);
    this.flush = null;
    for (const [key, k] of this.kept) for (const id of k.leases) this.giveBack(key, k.account, k.mailbox, id);
    this.kept.clear();
  }
}

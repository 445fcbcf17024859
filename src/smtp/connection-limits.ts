/** Connection counting across all listeners: in total and per client address. */

export type Admission = { ok: true } | { ok: false; limit: 'maxConnections' | 'maxConnectionsPerClient'; max: number };

export class ConnectionLimits {
  private total = 0;
  private readonly perClient = new Map<string, number>();
  constructor(
    private readonly maxTotal: number,
    private readonly maxPerClient: number,
  ) {}

  /** Counts the connection when admitted; every admitted connection must be released exactly once. */
  admit(address: string): Admission {
    if (this.total >= this.maxTotal) return { ok: false, limit: 'maxConnections', max: this.maxTotal };
    const n = this.perClient.get(address) ?? 0;
    if (n >= this.maxPerClient) return { ok: false, limit: 'maxConnectionsPerClient', max: this.maxPerClient };
    this.total++;
    this.perClient.set(address, n + 1);
    return { ok: true };
  }

  release(address: string): void {
    const n = this.perClient.get(address) ?? 0;
    if (n <= 1) this.perClient.delete(address);
    else this.perClient.set(address, n - 1);
    if (n > 0) this.total--;
  }

  get open(): number {
    return this.total;
  }
}

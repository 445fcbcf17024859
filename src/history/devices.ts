/**
 * The device view: every client that sends through the relay, by AUTH user or else by client address, with
 * when it was last seen, how much it sent today, its last error and TLS version, and whether it has gone
 * silent for longer than it usually does (a printer whose password changed simply stops sending).
 */

import type { DeviceRow } from './types.js';

/** Gaps shorter than this are one burst (a scanner sends a batch), not the device's rhythm. */
const BURST_MS = 60_000;
/** Weight of a new gap in the moving average. */
const ALPHA = 0.25;
/** Messages a device must have sent before its silence means anything. */
const MIN_MESSAGES = 3;
const MAX_DEVICES = 10_000;

export interface DeviceView extends DeviceRow {
  /** Silent for longer than silenceFactor × its usual gap (and minSilence). */
  silent: boolean;
  /** When it will count as silent if it sends nothing (null: not enough history yet). */
  silentAfter: number | null;
}

export interface DeviceSettings {
  silenceFactor: number;
  minSilenceMs: number;
}

const DAY_MS = 86_400_000;
/** The last day asked for: every message of a day asks for the same one (a Date and a string per message otherwise). */
let dayCache = { start: 0, text: '' };

function utcDay(ms: number): string {
  if (ms >= dayCache.start && ms < dayCache.start + DAY_MS) return dayCache.text;
  const start = Math.floor(ms / DAY_MS) * DAY_MS;
  dayCache = { start, text: new Date(start).toISOString().slice(0, 10) };
  return dayCache.text;
}

export function deviceId(user: string | null | undefined, client: string): { id: string; kind: DeviceRow['kind'] } {
  return user ? { id: `user:${user.toLowerCase()}`, kind: 'user' } : { id: `address:${client}`, kind: 'address' };
}

export class DeviceTracker {
  private readonly byId = new Map<string, DeviceRow>();
  private readonly dirty = new Set<string>();
  /** The user each address last authenticated as, so that a failed login shows on that user's device too. */
  private readonly userOf = new Map<string, string>();

  constructor(private readonly settings: DeviceSettings) {}

  load(rows: readonly DeviceRow[]): void {
    for (const r of rows) {
      if (!this.byId.has(r.id)) this.byId.set(r.id, r);
      if (r.kind === 'user' && r.via) this.userOf.set(r.via, r.id);
    }
  }

  get size(): number {
    return this.byId.size;
  }

  private get(id: string, kind: DeviceRow['kind'], at: number): DeviceRow {
    let d = this.byId.get(id);
    if (!d) {
      if (this.byId.size >= MAX_DEVICES) this.evictOldest();
      d = { id, kind, firstSeen: at, lastSeen: 0, day: utcDay(at), today: 0, total: 0, gapMs: 0, lastError: null, lastErrorAt: null, tls: null, via: null };
      this.byId.set(id, d);
    }
    this.dirty.add(id);
    return d;
  }

  private evictOldest(): void {
    let oldest: DeviceRow | null = null;
    for (const d of this.byId.values()) if (!oldest || d.lastSeen < oldest.lastSeen) oldest = d;
    if (oldest) this.byId.delete(oldest.id);
  }

  /** A message accepted from this device. */
  sent(user: string | null, client: string, at: number, tls: string | null): void {
    const { id, kind } = deviceId(user, client);
    const d = this.get(id, kind, at);
    const gap = d.lastSeen ? at - d.lastSeen : 0;
    if (gap >= BURST_MS) d.gapMs = d.gapMs ? Math.round(d.gapMs + ALPHA * (gap - d.gapMs)) : gap;
    d.lastSeen = Math.max(d.lastSeen, at);
    const day = utcDay(at);
    if (d.day !== day) {
      d.day = day;
      d.today = 0;
    }
    d.today++;
    d.total++;
    d.tls = tls;
    d.via = user ? client : null;
    if (user) this.userOf.set(client, id);
  }

  /** Something went wrong for this device: an SMTP refusal (a failed login included) or a failed delivery. */
  failed(user: string | null, client: string, at: number, error: string): void {
    const ids = [deviceId(user, client)];
    // A failed login has no user yet: it shows on the address, and on the user that address last sent as.
    const last = user ? undefined : this.userOf.get(client);
    if (last) ids.push({ id: last, kind: 'user' });
    for (const { id, kind } of ids) {
      const d = this.get(id, kind, at);
      d.lastError = error.slice(0, 300);
      d.lastErrorAt = at;
    }
  }

  /** Devices changed since the last call: what the next history batch persists. */
  takeDirty(): DeviceRow[] {
    const out: DeviceRow[] = [];
    for (const id of this.dirty) {
      const d = this.byId.get(id);
      if (d) out.push({ ...d });
    }
    this.dirty.clear();
    return out;
  }

  silentAfter(d: DeviceRow): number | null {
    if (d.total < MIN_MESSAGES || d.gapMs === 0) return null;
    return d.lastSeen + Math.max(this.settings.minSilenceMs, this.settings.silenceFactor * d.gapMs);
  }

  list(now: number): DeviceView[] {
    const today = utcDay(now);
    return [...this.byId.values()]
      .map((d) => {
        const after = this.silentAfter(d);
        return { ...d, today: d.day === today ? d.today : 0, silent: after !== null && now > after, silentAfter: after };
      })
      .sort((a, b) => Number(b.silent) - Number(a.silent) || b.lastSeen - a.lastSeen);
  }

  silentCount(now: number): number {
    let n = 0;
    for (const d of this.byId.values()) {
      const after = this.silentAfter(d);
      if (after !== null && now > after) n++;
    }
    return n;
  }
}

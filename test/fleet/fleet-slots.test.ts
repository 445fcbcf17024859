/** The fleet's shared slots against a real redis-server: leases, their expiry and renewal, pauses, pacing, and the fallback. */

import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FleetConfig } from '../../src/config/fleet.js';
import { fallbackShare, FleetSlots, type FleetMode } from '../../src/fleet/fleet-slots.js';
import { createLogger } from '../../src/observability/logger.js';
import type { SlotAnswer } from '../../src/scheduler/slots.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';

let redis: RedisServer;
let admin: Redis;
const made: FleetSlots[] = [];
let prefixSeq = 0;

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
});
afterAll(async () => {
  admin.disconnect();
  await redis.stop();
});
afterEach(async () => {
  await Promise.all(made.splice(0).map((f) => f.close()));
});

interface Replica {
  slots: FleetSlots;
  logs: Record<string, unknown>[];
  modes: FleetMode[];
  freed: string[];
  /** Resolves at the next "freed" wake-up for this mailbox (or for all). */
  nextFreed(mailbox: string): Promise<void>;
}

function replica(name: string, prefix: string, over: Partial<FleetConfig> = {}, opts: { messagesPerMinute?: number; probeMs?: number } = {}): Replica {
  const logs: Record<string, unknown>[] = [];
  const log = createLogger('debug', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const modes: FleetMode[] = [];
  const freed: string[] = [];
  const waiters: { mailbox: string; resolve: () => void }[] = [];
  const cfg: FleetConfig = { redisUrl: redis.url, replica: name, replicas: 3, leaseMs: 1_000, keyPrefix: prefix, ...over };
  const slots = new FleetSlots({
    cfg,
    perMailboxConcurrency: 4,
    messagesPerMinute: opts.messagesPerMinute ?? 0,
    log,
    probeMs: opts.probeMs ?? 100,
    events: { mode: (m) => modes.push(m), held: () => undefined },
  });
  slots.onFreed((_a, m) => {
    freed.push(m ?? '*');
    for (const w of waiters.splice(0)) if (m === undefined || w.mailbox === m) w.resolve();
  });
  made.push(slots);
  return { slots, logs, modes, freed, nextFreed: (mailbox) => new Promise((resolve) => waiters.push({ mailbox, resolve })) };
}

/** A fresh key prefix per test: tests share the one Redis. */
const prefix = (): string => `t${++prefixSeq}:`;

async function acquireN(s: FleetSlots, n: number, mailbox = 'a@contoso.example'): Promise<SlotAnswer[]> {
  const out: SlotAnswer[] = [];
  for (let i = 0; i < n; i++) out.push(await s.acquire('default', mailbox));
  return out;
}

const granted = (xs: SlotAnswer[]): number => xs.filter((x) => x.granted).length;

/** Polls `f` until it returns true (a lease's expiry has no event to wait for). */
async function until(f: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('fleet slots on Redis', () => {
  it('keeps a mailbox at 4 in flight across replicas, and wakes the others when one is released', async () => {
    const p = prefix();
    const a = replica('relay-0', p);
    const b = replica('relay-1', p);
    await a.slots.start();
    await b.slots.start();
    expect(a.slots.status().mode).toBe('shared');
    expect(a.logs.some((l) => l.event === 'fleet-shared')).toBe(true);
    const fromA = await acquireN(a.slots, 3);
    const fromB = await acquireN(b.slots, 2);
    expect(granted(fromA)).toBe(3);
    expect(granted(fromB)).toBe(1);
    const refused = fromB[1]!;
    expect(refused.granted).toBe(false);
    // Another mailbox is not affected.
    expect((await b.slots.acquire('default', 'b@contoso.example')).granted).toBe(true);
    // The same name under another account is another mailbox.
    expect((await b.slots.acquire('tenant2', 'a@contoso.example')).granted).toBe(true);
    expect(await admin.zcard(`${p}lease:default/a@contoso.example`)).toBe(4);
    const woken = b.nextFreed('a@contoso.example');
    const first = fromA[0]!;
    if (first.granted) first.release();
    await woken;
    expect((await b.slots.acquire('default', 'a@contoso.example')).granted).toBe(true);
    expect((await a.slots.acquire('default', 'a@contoso.example')).granted).toBe(false);
    // Which replica holds which slots.
    const leases = await a.slots.fleetLeases();
    const holders = leases.filter((l) => l.mailbox === 'a@contoso.example' && l.account === 'default').map((l) => l.replica).sort();
    expect(holders).toEqual(['relay-0', 'relay-0', 'relay-1', 'relay-1']);
    expect(b.slots.status().held).toContainEqual({ account: 'default', mailbox: 'a@contoso.example', slots: 2 });
  });

  it('hands a released slot to the same replica\'s next attempt of that turn, without Redis; not while the mailbox is paused', async () => {
    const p = prefix();
    const a = replica('relay-0', p);
    await a.slots.start();
    const key = `${p}lease:default/a@contoso.example`;
    const first = await a.slots.acquire('default', 'a@contoso.example');
    expect(first.granted).toBe(true);
    const [id] = await admin.zrange(key, 0, -1);
    if (first.granted) first.release();
    // The scheduler's next attempt, in the same turn: the same lease, taken over.
    const next = a.slots.acquire('default', 'a@contoso.example');
    expect((await next).granted).toBe(true);
    expect(await admin.zrange(key, 0, -1)).toEqual([id]);
    // Paused (this replica's throttle): a released lease goes back to Redis, which refuses the next start.
    const answer = await next;
    a.slots.paused('default', 'a@contoso.example', Date.now() + 5_000);
    if (answer.granted) answer.release();
    const refused = await a.slots.acquire('default', 'a@contoso.example');
    expect(refused.granted).toBe(false);
    await until(async () => (await admin.zcard(key)) === 0, 'the lease given back');
  });

  it("frees a dead replica's slots when its leases expire, and renews the leases of a live one", async () => {
    const p = prefix();
    const dead = replica('relay-0', p);
    const live = replica('relay-1', p);
    const other = replica('relay-2', p);
    await Promise.all([dead.slots.start(), live.slots.start(), other.slots.start()]);
    expect(granted(await acquireN(dead.slots, 2))).toBe(2);
    expect(granted(await acquireN(live.slots, 2))).toBe(2);
    await dead.slots.close(); // gone without releasing: a crashed replica
    expect((await other.slots.acquire('default', 'a@contoso.example')).granted).toBe(false);
    // The dead replica's two leases expire (1 s); the live one's are renewed every third of that.
    await until(async () => (await other.slots.acquire('default', 'a@contoso.example')).granted, 'a slot after the dead leases expire');
    expect(granted(await acquireN(other.slots, 2))).toBe(1);
    const holders = (await admin.zrange(`${p}lease:default/a@contoso.example`, 0, -1)).map((m) => m.split('#')[0]).sort();
    expect(holders).toEqual(['relay-1', 'relay-1', 'relay-2', 'relay-2']);
  });

  it("pauses a mailbox on every replica after one's throttle, and paces across the fleet", async () => {
    const p = prefix();
    const a = replica('relay-0', p);
    const b = replica('relay-1', p);
    await Promise.all([a.slots.start(), b.slots.start()]);
    const now = Date.now();
    a.slots.paused('default', 'a@contoso.example', now + 5_000);
    const answer = await b.slots.acquire('default', 'a@contoso.example');
    expect(answer.granted).toBe(false);
    if (!answer.granted) expect(answer.retryAt - now).toBeGreaterThan(3_000);
    expect(await admin.get(`${p}pause:default/a@contoso.example`)).toBe('relay-0');
    // A shorter pause does not shorten it.
    b.slots.paused('default', 'a@contoso.example', Date.now() + 100);
    await until(async () => (await admin.pttl(`${p}pause:default/a@contoso.example`)) > 0, 'pause set');
    expect(await admin.pttl(`${p}pause:default/a@contoso.example`)).toBeGreaterThan(3_000);

    const q = prefix();
    const c = replica('relay-0', q, {}, { messagesPerMinute: 6 });
    const d = replica('relay-1', q, {}, { messagesPerMinute: 6 });
    await Promise.all([c.slots.start(), d.slots.start()]);
    expect((await c.slots.acquire('default', 'x@contoso.example')).granted).toBe(true);
    const paced = await d.slots.acquire('default', 'x@contoso.example');
    expect(paced.granted).toBe(false);
    if (!paced.granted) expect(paced.retryAt - Date.now()).toBeGreaterThan(5_000);
  });

  it('falls back to a static share when Redis goes, and shares again when it is back', async () => {
    const p = prefix();
    const a = replica('relay-0', p, { leaseMs: 1_000 });
    await a.slots.start();
    const held = await acquireN(a.slots, 2);
    expect(granted(held)).toBe(2);
    await redis.kill();
    await until(() => a.slots.status().mode === 'fallback', 'fallback mode');
    const fb = a.logs.filter((l) => l.event === 'fleet-fallback');
    expect(fb).toHaveLength(1);
    expect(fb[0]).toMatchObject({ replica: 'relay-0', share: 1, replicas: 3 });
    expect(a.modes).toEqual(['shared', 'fallback']);
    expect(a.slots.status().fallbacks).toBe(1);
    // It still holds 2 (more than its share of 1): nothing more for this mailbox until they end.
    expect((await a.slots.acquire('default', 'a@contoso.example')).granted).toBe(false);
    // Another mailbox: after one lease time (requests started under shared limits end), its share of 1.
    await until(async () => (await a.slots.acquire('default', 'c@contoso.example')).granted, 'a fallback slot');
    expect((await a.slots.acquire('default', 'c@contoso.example')).granted).toBe(false);
    for (const h of held) if (h.granted) h.release();
    expect((await a.slots.acquire('default', 'a@contoso.example')).granted).toBe(true);
    // Still logged once.
    expect(a.logs.filter((l) => l.event === 'fleet-fallback')).toHaveLength(1);

    const woken = a.nextFreed('*');
    await redis.restart();
    await until(() => a.slots.status().mode === 'shared', 'back to shared');
    await woken;
    expect(a.logs.filter((l) => l.event === 'fleet-shared')).toHaveLength(2);
    expect(a.modes).toEqual(['shared', 'fallback', 'shared']);
    // The slots it took while falling back are in Redis now, so the fleet counts them.
    const fresh = new Redis(redis.url);
    try {
      expect(await fresh.zcard(`${p}lease:default/a@contoso.example`)).toBe(1);
      expect(await fresh.zcard(`${p}lease:default/c@contoso.example`)).toBe(1);
    } finally {
      fresh.disconnect();
    }
    admin.disconnect();
    admin = new Redis(redis.url);
  });

  it('never waits on a Redis that does not answer: the acquire falls back within its time limit', async () => {
    const p = prefix();
    const a = replica('relay-0', p, { leaseMs: 1_000 });
    await a.slots.start();
    expect(a.slots.status().mode).toBe('shared');
    redis.child.kill('SIGSTOP');
    try {
      const answer = await a.slots.acquire('default', 'a@contoso.example');
      // Answered from the fallback (settling first), not left hanging.
      expect(answer.granted).toBe(false);
      expect(a.slots.status().mode).toBe('fallback');
      expect(a.logs.find((l) => l.event === 'fleet-fallback')?.reason).toMatch(/timed out/i);
    } finally {
      redis.child.kill('SIGCONT');
    }
    await until(() => a.slots.status().mode === 'shared', 'back to shared');
  });

  it('starts in fallback when Redis cannot be reached at all, and delivers on its share', async () => {
    const a = replica('relay-0', prefix(), { redisUrl: 'redis://127.0.0.1:1', leaseMs: 1_000 });
    await a.slots.start();
    expect(a.slots.status().mode).toBe('fallback');
    expect(a.logs.filter((l) => l.event === 'fleet-fallback')).toHaveLength(1);
    await until(async () => (await a.slots.acquire('default', 'a@contoso.example')).granted, 'a fallback slot');
    expect((await a.slots.acquire('default', 'a@contoso.example')).granted).toBe(false);
    expect(a.slots.status()).toMatchObject({ replica: 'relay-0', mode: 'fallback', fallbackShare: 1, redis: 'redis://127.0.0.1:1' });
  });
});

describe('the static share', () => {
  it('is the limit divided by the replicas, rounded down, at least 1', () => {
    expect(fallbackShare(4, 1)).toBe(4);
    expect(fallbackShare(4, 2)).toBe(2);
    expect(fallbackShare(4, 3)).toBe(1);
    expect(fallbackShare(4, 8)).toBe(1);
    expect(fallbackShare(16, 3)).toBe(5);
  });
});

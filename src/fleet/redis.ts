/** The fleet's two Redis connections (commands, and the subscriber that hears of freed slots) and its read of every lease. */

import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';
import type { FleetConfig } from '../config/fleet.js';
import { ACQUIRE, RENEW } from './scripts.js';

type Reply = [number, number, string];
/** The Lua scripts of scripts.ts, as commands (EVALSHA, EVAL when Redis does not know the script yet). */
export interface FleetCommands {
  fleetAcquire(lease: string, pause: string, pace: string, limit: number, leaseMs: number, id: string, intervalMs: number): Promise<Reply>;
  fleetRenew(lease: string, leaseMs: number, ...ids: string[]): Promise<number>;
}

/**
 * Connected lazily (FleetSlots.start), tried again every `retryMs` while away. A command while Redis is away
 * fails at once, and one that Redis does not answer within `timeoutMs` fails then: the replica falls back.
 */
export function redisClients(cfg: FleetConfig, timeoutMs: number, retryMs: number): { redis: Redis & FleetCommands; sub: Redis } {
  // Loaded here, by a relay that has a fleet: ioredis and its dependencies are about 9 MB of an idle
  // relay's memory, and most relays are alone (test/app/lazy-modules.test.ts keeps it so).
  const { Redis } = createRequire(import.meta.url)('ioredis') as typeof import('ioredis');
  const url = cfg.redisUrl ?? 'redis://127.0.0.1:6379';
  const opts: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    commandTimeout: timeoutMs,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => retryMs,
    connectionName: `smtp-graph-relay:${cfg.replica}`,
  };
  const redis = new Redis(url, opts) as Redis & FleetCommands;
  redis.defineCommand('fleetAcquire', { numberOfKeys: 3, lua: ACQUIRE });
  redis.defineCommand('fleetRenew', { numberOfKeys: 1, lua: RENEW });
  // Connection errors come as events; the fleet's mode change (fleet-fallback) says them once.
  redis.on('error', () => undefined);
  // A subscriber's SUBSCRIBE waits for the connection (Redis's rule: a connection of its own for it).
  const sub = new Redis(url, { ...opts, enableOfflineQueue: true, autoResubscribe: false, commandTimeout: undefined, connectionName: `smtp-graph-relay:${cfg.replica}:sub` });
  sub.on('error', () => undefined);
  return { redis, sub };
}

export interface LeaseView {
  account: string;
  mailbox: string;
  replica: string;
  expiresInMs: number;
}

/** Every live lease under `base` (the lease keys' prefix), on Redis's clock; at most 10,000. */
export async function readLeases(redis: Redis, base: string): Promise<LeaseView[]> {
  const out: LeaseView[] = [];
  const [secs, micros] = await redis.time();
  const now = Number(secs) * 1000 + Math.floor(Number(micros) / 1000);
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${base.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 500);
    cursor = next;
    for (const key of keys) {
      const k = key.slice(base.length);
      const slash = k.indexOf('/');
      const flat = await redis.zrangebyscore(key, now, '+inf', 'WITHSCORES');
      for (let i = 0; i + 1 < flat.length; i += 2) {
        out.push({ account: k.slice(0, slash), mailbox: k.slice(slash + 1), replica: flat[i]!.split('#')[0]!, expiresInMs: Number(flat[i + 1]) - now });
      }
    }
  } while (cursor !== '0' && out.length < 10_000);
  return out;
}

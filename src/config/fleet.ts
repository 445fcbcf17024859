/** fleet: several replicas keep Graph's per-mailbox limits together on Redis (src/fleet/). */

import { hostname } from 'node:os';
import { ConfigError } from '../errors.js';
import type { Reader } from './reader.js';

export interface FleetConfig {
  /** redis:// or rediss:// URL; null: no fleet, this relay's own limits only. */
  redisUrl: string | null;
  /** This replica's name in leases, logs and metrics (default: the host name, a StatefulSet pod's name). */
  replica: string;
  /** How many replicas share the limits: without Redis, each takes limit ÷ replicas (rounded down, at least 1). */
  replicas: number;
  /** A slot's lease: a replica that dies frees its slots within this time; held leases are renewed at a third of it. */
  leaseMs: number;
  /** Every Redis key of the fleet starts with it (several fleets on one Redis). */
  keyPrefix: string;
}

export function readFleet(f: Reader, env: NodeJS.ProcessEnv): FleetConfig {
  // The file's keys are read (and so known) even where the environment overrides them.
  const fileUrl = f.str('redisUrl', null);
  const redisUrl = env.RELAY_FLEET_REDIS_URL || fileUrl;
  const fromFile = f.raw('replicas');
  const replicasRaw = env.RELAY_FLEET_REPLICAS ?? fromFile;
  const replica = f.str('replica', hostname());
  const fleet: FleetConfig = {
    redisUrl,
    replica: env.RELAY_REPLICA || replica,
    replicas: 1,
    leaseMs: f.duration('leaseTime', 10_000, 1_000, 300_000),
    keyPrefix: f.str('keyPrefix', 'smtp-graph-relay:'),
  };
  if (replicasRaw !== undefined && replicasRaw !== null && replicasRaw !== '') {
    const n = typeof replicasRaw === 'string' && /^\d+$/.test(replicasRaw) ? Number(replicasRaw) : replicasRaw;
    const key = env.RELAY_FLEET_REPLICAS !== undefined ? 'RELAY_FLEET_REPLICAS' : f.key('replicas');
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1000) throw new ConfigError(key, `must be a whole number from 1 to 1000 (got ${JSON.stringify(replicasRaw)})`);
    fleet.replicas = n;
  } else if (redisUrl) {
    throw new ConfigError(f.key('replicas'), 'must be set with fleet.redisUrl: without Redis each replica takes this share of the limits (RELAY_FLEET_REPLICAS)');
  }
  if (redisUrl) {
    let url: URL;
    try {
      url = new URL(redisUrl);
    } catch {
      throw new ConfigError(env.RELAY_FLEET_REDIS_URL ? 'RELAY_FLEET_REDIS_URL' : f.key('redisUrl'), 'is not a URL such as redis://redis:6379 or rediss://user:password@redis.example:6380/0');
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new ConfigError(env.RELAY_FLEET_REDIS_URL ? 'RELAY_FLEET_REDIS_URL' : f.key('redisUrl'), `must start with redis:// or rediss:// (got ${url.protocol}//)`);
    }
  }
  if (!/^[A-Za-z0-9._-]{1,63}$/.test(fleet.replica)) {
    throw new ConfigError(env.RELAY_REPLICA ? 'RELAY_REPLICA' : f.key('replica'), `"${fleet.replica}" is not a replica name (letters, digits, ".", "_", "-"; at most 63)`);
  }
  if (!/^[\x21-\x7e]{0,64}$/.test(fleet.keyPrefix)) throw new ConfigError(f.key('keyPrefix'), 'must be at most 64 printable characters without spaces');
  f.done();
  return fleet;
}

/** The URL with its password replaced, for logs and check-config. */
export function redactRedisUrl(url: string | null): string | null {
  if (!url) return url;
  try {
    const u = new URL(url);
    if (u.password) u.password = 'redacted';
    return u.toString();
  } catch {
    return '[redacted]';
  }
}

/** fleet: settings, validated at start with the key named; the Redis password never printed. */

import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { buildConfig, redactConfig } from '../../src/config/load.js';

const base = { delivery: { mode: 'capture' }, mailboxes: { senderDomains: ['contoso.example'] } };
const build = (fleet: unknown, env: NodeJS.ProcessEnv = {}) => buildConfig({ ...base, fleet }, env);

describe('fleet settings', () => {
  it('default to a single relay named after the host', () => {
    expect(build(undefined).fleet).toEqual({ redisUrl: null, replica: hostname(), replicas: 1, leaseMs: 10_000, keyPrefix: 'smtp-graph-relay:' });
  });

  it('read the file and the environment, the environment first', () => {
    const f = build({ redisUrl: 'redis://redis:6379', replicas: 3, replica: 'relay-0', leaseTime: '5s', keyPrefix: 'eu:' }).fleet;
    expect(f).toEqual({ redisUrl: 'redis://redis:6379', replica: 'relay-0', replicas: 3, leaseMs: 5_000, keyPrefix: 'eu:' });
    const e = build({ redisUrl: 'redis://redis:6379', replicas: 3 }, { RELAY_FLEET_REDIS_URL: 'rediss://r.example:6380/1', RELAY_FLEET_REPLICAS: '5', RELAY_REPLICA: 'pod-4' }).fleet;
    expect(e).toMatchObject({ redisUrl: 'rediss://r.example:6380/1', replicas: 5, replica: 'pod-4' });
  });

  it('refuse what cannot work, naming the key', () => {
    expect(() => build({ redisUrl: 'redis://redis:6379' })).toThrow(/^fleet\.replicas: must be set with fleet\.redisUrl/);
    expect(() => build({ redisUrl: 'http://redis:6379', replicas: 2 })).toThrow(/^fleet\.redisUrl: must start with redis:\/\/ or rediss:\/\//);
    expect(() => build({ redisUrl: 'not a url', replicas: 2 })).toThrow(/^fleet\.redisUrl: is not a URL/);
    expect(() => build({ redisUrl: 'redis://r', replicas: 0 })).toThrow(/^fleet\.replicas: must be a whole number from 1 to 1000/);
    expect(() => build({}, { RELAY_FLEET_REPLICAS: 'three' })).toThrow(/^RELAY_FLEET_REPLICAS: must be a whole number/);
    expect(() => build({ replica: 'relay 0' })).toThrow(/^fleet\.replica: "relay 0" is not a replica name/);
    expect(() => build({ leaseTime: '100ms' })).toThrow(/^fleet\.leaseTime: must be between 1000 ms/);
    expect(() => build({ redisURL: 'redis://r' })).toThrow(/^fleet\.redisURL: unknown setting/);
  });

  it('never print the Redis password', () => {
    const cfg = build({ redisUrl: 'redis://relay:s3cret@redis:6379/0', replicas: 2 });
    expect(cfg.fleet.redisUrl).toBe('redis://relay:s3cret@redis:6379/0');
    const shown = JSON.stringify(redactConfig(cfg));
    expect(shown).not.toContain('s3cret');
    expect(redactConfig(cfg).fleet.redisUrl).toBe('redis://relay:redacted@redis:6379/0');
  });
});

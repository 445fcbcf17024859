/**
 * Three relays (the built binary), one Graph emulator (200 ms latency, 4 requests in flight per mailbox, a
 * 429 above that) and one real Redis: the fleet keeps Graph's limits together, and loses nothing when
 * Redis goes away in the middle of a drain.
 */

import nodemailer from 'nodemailer';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SentRecord } from '../emulator/types.js';
import { useTestbed } from '../helpers/graph-relay.js';
import { startRedis, type RedisServer } from '../helpers/redis-server.js';
import type { RelayProcess } from '../helpers/relay-process.js';

const MAILBOXES = 10;
const N = 300;
const bed = useTestbed({ latencyMs: 200, mailboxConcurrency: 4 });
let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});
afterEach(async () => {
  // A test that killed Redis leaves it running again for the next.
  if (redis.child.exitCode !== null || redis.child.signalCode !== null) await redis.restart();
});

function startFleet(prefix: string): Promise<RelayProcess[]> {
  return Promise.all(
    [0, 1, 2].map((i) =>
      bed.relay({
        fleet: { redisUrl: redis.url, replica: `relay-${i}`, replicas: 3, leaseTime: '1s', keyPrefix: prefix },
        log: { level: 'info' },
      }),
    ),
  );
}

/** N messages over real SMTP sessions, spread over the relays and over MAILBOXES sending mailboxes. */
async function sendAll(relays: RelayProcess[], tag: string): Promise<string[]> {
  const ids: string[] = [];
  await Promise.all(
    relays.map(async (r, ri) => {
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: r.smtpPort, secure: false, ignoreTLS: true, pool: true, maxConnections: 4, maxMessages: Infinity });
      try {
        const mine: Promise<unknown>[] = [];
        for (let i = ri; i < N; i += relays.length) {
          const messageId = `<${tag}-${i}@fleet.test>`;
          ids.push(messageId);
          const from = `box${i % MAILBOXES}@contoso.example`;
          mine.push(transport.sendMail({ from, to: 'someone@fabrikam.example', subject: `${tag} ${i}`, text: `message ${i}`, messageId }));
        }
        await Promise.all(mine);
      } finally {
        transport.close();
      }
    }),
  );
  return ids;
}

function messageIdOf(rec: SentRecord): string {
  const head = rec.mime?.toString('latin1').split('\r\n\r\n')[0] ?? '';
  return /^Message-ID:\s*(\S+)/im.exec(head)?.[1] ?? '(none)';
}

function countById(sent: SentRecord[]): Map<string, number> {
  const seen = new Map<string, number>();
  for (const rec of sent) seen.set(messageIdOf(rec), (seen.get(messageIdOf(rec)) ?? 0) + 1);
  return seen;
}

async function adminGet(relay: RelayProcess, path: string): Promise<{ status: number; body: string }> {
  const port = Number((await relay.waitForLog((l) => l.event === 'admin-listening')).port);
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

describe('a fleet of three relays on one Redis', () => {
  it('never has more than 4 requests in flight per mailbox at Graph, draws no 429, and delivers each message once', { timeout: 120_000 }, async () => {
    const relays = await startFleet('fleet-a:');
    for (const r of relays) expect(r.logs.find((l) => l.event === 'fleet-shared')).toMatchObject({ replicas: 3 });
    const ids = await sendAll(relays, 'shared');
    await bed.emu.waitForSent(N, 90_000);
    const stats = bed.emu.stats();
    const maxPerMailbox = Math.max(...Object.values(stats.perMailbox).map((m) => m.maxInFlight));
    expect(maxPerMailbox).toBeLessThanOrEqual(4);
    // Not held below the limit either: the fleet fills the mailbox's 4 slots.
    expect(maxPerMailbox).toBe(4);
    expect(stats.throttled429).toBe(0);
    const seen = countById(bed.emu.sent);
    expect(seen.size).toBe(N);
    expect(ids.filter((id) => seen.get(id) !== 1)).toEqual([]);
    // Every replica delivered its own share.
    for (const r of relays) expect((await r.waitForLogs((l) => l.event === 'delivered', N / 3)).length).toBe(N / 3);

    // The fleet is visible: the replica and its mode in /readyz, /fleet and /metrics.
    const ready = JSON.parse((await adminGet(relays[1]!, '/readyz')).body) as { checks: Record<string, string> };
    expect(ready.checks.fleet).toBe('shared (replica relay-1)');
    const fleet = JSON.parse((await adminGet(relays[1]!, '/fleet')).body) as { replica: string; mode: string; replicas: number; fallbackShare: number; held: unknown[]; leases: unknown[] };
    expect(fleet).toMatchObject({ replica: 'relay-1', mode: 'shared', replicas: 3, fallbackShare: 1, held: [], leases: [] });
    const metrics = (await adminGet(relays[2]!, '/metrics')).body;
    expect(metrics).toMatch(/^relay_fleet_mode\{replica="relay-2",mode="shared"\} 1$/m);
    expect(metrics).toMatch(/^relay_fleet_mode\{replica="relay-2",mode="fallback"\} 0$/m);
  });

  it('loses nothing and sends nothing twice when Redis is killed in the middle of a drain, and shares again when it is back', { timeout: 120_000 }, async () => {
    const relays = await startFleet('fleet-b:');
    const sending = sendAll(relays, 'killed');
    await bed.emu.waitForSent(N / 5, 60_000);
    await redis.kill();
    await Promise.all(relays.map((r) => r.waitForLog((l) => l.event === 'fleet-fallback', 20_000)));
    const ids = await sending;
    await bed.emu.waitForSent(N, 90_000);
    const seen = countById(bed.emu.sent);
    expect(seen.size).toBe(N);
    expect(ids.filter((id) => seen.get(id) !== 1)).toEqual([]);
    for (const r of relays) {
      expect(r.logs.filter((l) => l.event === 'fleet-fallback')).toHaveLength(1);
      expect(r.logs.find((l) => l.event === 'fleet-fallback')).toMatchObject({ share: 1, replicas: 3 });
    }
    const metrics = (await adminGet(relays[0]!, '/metrics')).body;
    expect(metrics).toMatch(/^relay_fleet_mode\{replica="relay-0",mode="fallback"\} 1$/m);
    expect(metrics).toMatch(/^relay_fleet_fallbacks_total\{replica="relay-0"\} 1$/m);
    expect(JSON.parse((await adminGet(relays[0]!, '/readyz')).body)).toMatchObject({ status: 'ready', checks: { fleet: 'fallback (replica relay-0)' } });

    await redis.restart();
    await Promise.all(relays.map((r) => r.waitForLogs((l) => l.event === 'fleet-shared', 2, 20_000)));
    const after = (await adminGet(relays[0]!, '/metrics')).body;
    expect(after).toMatch(/^relay_fleet_mode\{replica="relay-0",mode="shared"\} 1$/m);
  });
});

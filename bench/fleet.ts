/**
 * Fleet: three relays share Graph's per-mailbox limits on one real Redis (fleet.redisUrl), against one
 * emulator with latency L and 4 requests in flight per mailbox (a 429 above that). The relays are running
 * ones, as in service (each first delivers `--warmup` messages with Graph answering at once); then N
 * messages across M mailboxes are sent to the three at once (a third each, every mailbox on every relay)
 * while they deliver. Drain time is from the first 250 to the last 202, against the optimum for one
 * application, N·L / (4·M).
 *
 *   npx tsx bench/fleet.ts [--n 1000] [--mailboxes 10] [--latency 200] [--jitter 20] [--kill-at 0.3] [--lease 2] [--warmup 300]
 *
 * Two runs: Redis up the whole drain, and Redis killed once `--kill-at` of the messages were sent (the
 * replicas fall back to their static share: limit ÷ 3 = 1 per mailbox each, after one lease time).
 * Reported: drain time against the optimum, 429s, the largest in-flight count any mailbox saw at Graph, and
 * Message-IDs lost or sent twice.
 */

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { startRedis, type RedisServer } from '../test/helpers/redis-server.js';
import { args, cleanup, ingest, machine, num, procFigures, startEmulatorChild, startRelay, table, verdict, type EmulatorChild, type RelayChild } from './lib.js';

const a = args({ n: 1000 }, ['mailboxes', 'latency', 'jitter', 'kill-at', 'lease', 'warmup']);
const M = num(a.values.mailboxes, 10);
const L = num(a.values.latency, 200);
const jitter = num(a.values.jitter, 20);
const killAt = num(a.values['kill-at'], 0.3);
const lease = num(a.values.lease, 2);
const warmup = num(a.values.warmup, 300);
const REPLICAS = 3;
const PER_MAILBOX = 4;
const optimumS = (a.n * L) / (PER_MAILBOX * M) / 1000;
const version = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout.trim().split(' ').slice(0, 3).join(' ');

process.stdout.write(`fleet: ${a.n} messages, ${M} mailboxes, ${REPLICAS} relays, Graph latency ${L} ±${jitter} ms, lease ${lease} s; ${version}; ${machine()}\n`);

const from = (i: number): string => `mailbox${i % M}@bench.example`;

interface Row {
  what: string;
  drainS: number;
  throttled429: number;
  maxInFlight: number;
  unique: number;
  duplicated: number;
  perRelay: number[];
  /** The three relays' CPU (user + system) per message, accepting and delivering it. */
  cpuMsPerMsg: number;
  note: string;
}

function fleetExtra(redis: RedisServer, i: number, prefix: string): Record<string, unknown> {
  return { fleet: { redisUrl: redis.url, replica: `relay-${i}`, replicas: REPLICAS, leaseTime: `${lease}s`, keyPrefix: prefix }, limits: { maxMessagesPerSession: 100_000 } };
}

async function run(name: string, killRedis: boolean): Promise<Row> {
  const redis = await startRedis();
  const emu: EmulatorChild = await startEmulatorChild({ latencyMs: 0, mailboxConcurrency: PER_MAILBOX });
  let relays: RelayChild[] = [];
  let killedAt = 0;
  try {
    relays = await Promise.all(Array.from({ length: REPLICAS }, (_, i) => startRelay({ dir: path.join(a.dir, `${name}-relay-${i}`), graph: emu.graph, extra: fleetExtra(redis, i, `${name}:`) })));
    // Running relays, as in service: each first delivers `warmup` messages with Graph answering at once.
    if (warmup > 0) {
      await Promise.all(relays.map((r, i) => ingest({ port: r.port, n: warmup, concurrency: 10, mode: 'reuse', from, offset: 1_000_000 + i * warmup })));
      await emu.waitForSent(warmup * REPLICAS, 300_000);
      await Promise.all(relays.map((r) => r.waitFor('delivered', warmup, 300_000)));
    }
    await emu.reset();
    await emu.setFaults({ latencyMs: L, jitterMs: jitter });
    const per = Math.ceil(a.n / REPLICAS);
    const cpu = (): number => relays.reduce((sum, r) => sum + procFigures(r.pid).cpuS, 0);
    const cpu0 = cpu();
    const sent = Promise.all(relays.map((r, i) => ingest({ port: r.port, n: Math.min(per, a.n - i * per), concurrency: 10, mode: 'reuse', from, offset: i * per })));
    if (killRedis) {
      await emu.waitForSent(Math.floor(a.n * killAt), 300_000);
      await redis.kill();
      killedAt = Date.now();
    }
    const accepted = await sent;
    const ok = accepted.reduce((sum, r) => sum + r.ok, 0);
    if (ok !== a.n) throw new Error(`only ${ok} of ${a.n} accepted`);
    const s = await emu.waitForSent(a.n, Math.max(120_000, optimumS * 20_000));
    const cpuMsPerMsg = ((cpu() - cpu0) * 1000) / a.n;
    const stats = await emu.stats();
    const ids = await emu.call<{ unique: number; duplicated: number }>('messageIds');
    const firstOk = Math.min(...accepted.map((r) => r.firstOkAt));
    await Promise.all(relays.map((r) => r.waitFor('delivered', warmup + 1, 60_000).catch(() => undefined)));
    return {
      what: killRedis ? `Redis killed after ${Math.round(killAt * 100)}% sent` : 'shared limits on Redis',
      drainS: (s.last - firstOk) / 1000,
      throttled429: stats.throttled429,
      maxInFlight: Math.max(0, ...Object.values(stats.perMailbox).map((m) => m.maxInFlight)),
      unique: ids.unique,
      duplicated: ids.duplicated,
      perRelay: relays.map((r) => (r.counts.delivered ?? 0) - warmup),
      cpuMsPerMsg,
      note: killRedis ? `Redis killed ${((killedAt - firstOk) / 1000).toFixed(2)} s in; the rest on the static share (1 per mailbox per relay) after one lease (${lease} s)` : `ingest over ${(Math.max(...accepted.map((r) => r.ms)) / 1000).toFixed(2)} s`,
    };
  } finally {
    await emu.stop();
    await Promise.all(relays.map((r) => r.stop()));
    await redis.stop();
  }
}

try {
  const shared = await run('shared', false);
  const killed = await run('killed', true);
  const rows = [
    { what: 'optimum N·L/(4·M)', 'drain s': optimumS, 'vs optimum': '1.00x', '429s': 0, 'max in flight/mailbox': PER_MAILBOX, 'delivered (unique)': a.n, 'sent twice': 0, 'per relay': '', note: 'one application, every mailbox at 4 in flight all the time' },
    ...[shared, killed].map((x) => ({
      what: x.what,
      'drain s': x.drainS,
      'vs optimum': `${(x.drainS / optimumS).toFixed(2)}x`,
      '429s': x.throttled429,
      'max in flight/mailbox': x.maxInFlight,
      'delivered (unique)': x.unique,
      'sent twice': x.duplicated,
      'per relay': x.perRelay.join(' / '),
      'relays CPU ms/msg': x.cpuMsPerMsg,
      note: x.note,
    })),
  ];
  process.stdout.write(`\n${table(rows)}\n`);
  const ratio = shared.drainS / optimumS;
  const sharedOk = ratio <= 1.1 && shared.throttled429 === 0 && shared.maxInFlight <= PER_MAILBOX && shared.unique === a.n && shared.duplicated === 0;
  const killedOk = killed.unique === a.n && killed.duplicated === 0;
  process.stdout.write(
    `\nSUMMARY fleet: ${a.n} msgs / ${M} mailboxes / ${REPLICAS} relays @ ${L} ms, optimum ${optimumS.toFixed(2)} s: shared ${shared.drainS.toFixed(2)} s = ${ratio.toFixed(2)}x, ` +
      `429s ${shared.throttled429}, max ${shared.maxInFlight} in flight per mailbox, relays' CPU ${shared.cpuMsPerMsg.toFixed(2)} ms/msg (target <= 1.10x, no 429, <= 4: ${verdict(sharedOk)}); ` +
      `Redis killed mid-drain: ${killed.drainS.toFixed(2)} s = ${(killed.drainS / optimumS).toFixed(2)}x, ${killed.unique} of ${a.n} delivered, ${killed.duplicated} twice, 429s ${killed.throttled429}, max ${killed.maxInFlight} in flight (nothing lost, nothing twice: ${verdict(killedOk)})\n`,
  );
} finally {
  cleanup(a.dir, a.keep);
}

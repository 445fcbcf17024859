/**
 * Warm-up: how many messages a freshly started server needs before its CPU per message settles, for the
 * relay (graph held: acceptance only) and the bare fsync'd smtp-server. This is what sets the ingest and
 * A/B benchmarks' --warmup: measured too early, both servers are still settling (JIT), at different paces.
 *
 *   npx tsx bench/warmup.ts [--n 2000] [--rounds 10]
 *
 * Both start fresh, then take rounds of --n messages over 20 reused sessions, alternating (ABBA), with
 * no warm-up at all; each row is one round's server CPU per message and msgs/s.
 */

import path from 'node:path';
import { args, cleanup, HELD_GRAPH, HELD_RELAY, ingest, machine, median, num, procFigures, startBareServer, startEmulatorChild, startRelay, table, type Child } from './lib.js';

const a = args({ n: 2000 }, ['rounds']);
const rounds = Math.max(2, num(a.values.rounds, 10));
const from = (i: number): string => `sender${i % 10}@bench.example`;

process.stdout.write(`warmup: ${rounds} rounds of ${a.n} messages of 10 KB, 20 reused sessions, from a fresh start; ${machine()}\n`);

const emu = await startEmulatorChild(HELD_GRAPH);
const servers: Record<'bare' | 'relay', (Child & { port: number }) | null> = { bare: null, relay: null };
try {
  servers.bare = await startBareServer(path.join(a.dir, 'bare-spool'));
  servers.relay = await startRelay({ dir: path.join(a.dir, 'relay'), graph: emu.graph, extra: HELD_RELAY });
  const cpuMs: Record<'bare' | 'relay', number[]> = { bare: [], relay: [] };
  const rate: Record<'bare' | 'relay', number[]> = { bare: [], relay: [] };
  let offset = 0;
  for (let round = 0; round < rounds; round++) {
    for (const k of round % 2 === 0 ? (['bare', 'relay'] as const) : (['relay', 'bare'] as const)) {
      const s = servers[k]!;
      const c0 = procFigures(s.pid).cpuS;
      const r = await ingest({ port: s.port, n: a.n, concurrency: 20, mode: 'reuse', from, offset: (offset += a.n) });
      cpuMs[k].push(((procFigures(s.pid).cpuS - c0) * 1000) / Math.max(1, r.ok));
      rate[k].push(r.rate);
    }
  }
  const rows = cpuMs.bare.map((_, i) => ({
    round: i + 1,
    'messages before it': i * a.n,
    'bare CPU ms/msg': cpuMs.bare[i]!,
    'relay CPU ms/msg': cpuMs.relay[i]!,
    'bare msgs/s': rate.bare[i]!,
    'relay msgs/s': rate.relay[i]!,
  }));
  process.stdout.write(`\n${table(rows)}\n`);
  // Settled: the first round within 15% of the median of the later half of the rounds (single rounds move by
  // 20% on this machine, so "every later round" would wait for the noise, not the server).
  const later = (xs: number[]): number => median(xs.slice(Math.floor(xs.length / 2)));
  const settled = (xs: number[]): number => xs.findIndex((x) => x <= later(xs) * 1.15) * a.n;
  process.stdout.write(
    `\nSUMMARY warmup: CPU per message, first round → median of the later half: bare ${cpuMs.bare[0]!.toFixed(2)} → ${later(cpuMs.bare).toFixed(2)} ms, relay ${cpuMs.relay[0]!.toFixed(2)} → ${later(cpuMs.relay).toFixed(2)} ms; ` +
      `within 15% of that after ${settled(cpuMs.bare)} messages (bare) and ${settled(cpuMs.relay)} (relay)\n`,
  );
} finally {
  await Promise.all([servers.bare?.stop(), servers.relay?.stop('SIGKILL')]);
  await emu.stop();
  cleanup(a.dir, a.keep);
}

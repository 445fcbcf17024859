/**
 * A/B: two relay builds accepting the same load in one run, rounds alternating (ABBA) so that machine
 * noise, which on a shared 2-core machine moves single figures by 20%, hits both alike.
 *
 *   npx tsx bench/ab.ts --b /path/to/other/dist/cli.js [--a dist/cli.js] [--mode reuse|per-message]
 *                       [--rounds 6] [--n 2000] [--warmup 10000] [--b-config JSON] [--b-env JSON]
 *
 * Both run in graph mode against one emulator that holds every sendMail (acceptance only, as the
 * ingest benchmark's "graph held" row), with limits.maxMessagesPerSession out of the way. Prints, per
 * build, the median msgs/s, the median server CPU ms per message and every round's figures.
 */

import path from 'node:path';
import { args, cleanup, HELD_GRAPH, HELD_RELAY, ingest, machine, median, num, procFigures, startEmulatorChild, startRelay, table, type RelayChild } from './lib.js';

const a = args({ n: 2000 }, ['a', 'b', 'mode', 'rounds', 'warmup', 'b-config', 'b-env']);
if (typeof a.values.b !== 'string') throw new Error('--b /path/to/dist/cli.js is required');
const builds = { A: path.resolve(typeof a.values.a === 'string' ? a.values.a : 'dist/cli.js'), B: path.resolve(a.values.b) };
const mode = (a.values.mode ?? 'reuse') as 'reuse' | 'per-message';
if (mode !== 'reuse' && mode !== 'per-message') throw new Error('--mode is reuse or per-message');
const rounds = Math.max(2, num(a.values.rounds, 6));
const from = (i: number): string => `sender${i % 10}@bench.example`;

process.stdout.write(`ab: ${a.n} messages of 10 KB per round, ${mode}, 20 at once, ${rounds} rounds; A ${builds.A}, B ${builds.B}; ${machine()}\n`);
const emu = await startEmulatorChild(HELD_GRAPH);
const relays: Record<'A' | 'B', RelayChild | null> = { A: null, B: null };
try {
  for (const k of ['A', 'B'] as const) {
    relays[k] = await startRelay({
      dir: path.join(a.dir, k),
      graph: emu.graph,
      cli: builds[k],
      extra: { ...HELD_RELAY, ...(k === 'B' && typeof a.values['b-config'] === 'string' ? JSON.parse(a.values['b-config']) : {}) },
      env: k === 'B' && typeof a.values['b-env'] === 'string' ? JSON.parse(a.values['b-env']) : {},
    });
  }
  let offset = 0;
  // Warm-up: a fresh relay takes thousands of messages to settle (bench/warmup.ts: about 6000, from 1.7 to
  // 0.4–0.6 ms of CPU per message).
  const warm = num(a.values.warmup, mode === 'reuse' ? 10_000 : 600);
  if (warm > 0) for (const k of ['A', 'B'] as const) await ingest({ port: relays[k]!.port, n: warm, concurrency: 20, mode, from, offset: (offset += warm) });
  const figures: Record<'A' | 'B', { rate: number; cpuMs: number }[]> = { A: [], B: [] };
  for (let round = 0; round < rounds; round++) {
    for (const k of round % 2 === 0 ? (['A', 'B'] as const) : (['B', 'A'] as const)) {
      const r = relays[k]!;
      const c0 = procFigures(r.pid).cpuS;
      const res = await ingest({ port: r.port, n: a.n, concurrency: 20, mode, from, offset: (offset += a.n) });
      const c1 = procFigures(r.pid).cpuS;
      figures[k].push({ rate: res.rate, cpuMs: ((c1 - c0) * 1000) / Math.max(1, res.ok) });
    }
  }
  const rows = (['A', 'B'] as const).map((k) => ({
    build: k,
    'msgs/s': median(figures[k].map((f) => f.rate)),
    'CPU ms/msg': median(figures[k].map((f) => f.cpuMs)),
    rounds: figures[k].map((f) => `${f.rate.toFixed(0)}/${f.cpuMs.toFixed(2)}`).join(' '),
  }));
  process.stdout.write(`\n${table(rows)}\n`);
  const ratio = rows[1]!['CPU ms/msg'] / rows[0]!['CPU ms/msg'];
  process.stdout.write(`\nSUMMARY ab: B uses ${(ratio * 100).toFixed(0)}% of A's CPU per message; B ${rows[1]!['msgs/s'].toFixed(0)} msgs/s, A ${rows[0]!['msgs/s'].toFixed(0)} msgs/s\n`);
} finally {
  // Nothing to drain: every sendMail is held. (The emulator's close waits for the relays' retries otherwise.)
  await Promise.all([relays.A?.stop('SIGKILL'), relays.B?.stop('SIGKILL')]);
  await emu.stop();
  cleanup(a.dir, a.keep);
}

/**
 * Backlog after an outage (issue 18): N messages (default 20,000) queued over M mailboxes while Graph and
 * Entra ID are unreachable (the emulator refuses connections), then Graph back at L ms latency. Two rounds:
 *   restart:    the relay is restarted while Graph is still down (for --down-after-restart ms), then Graph returns;
 *   no restart: the same relay that queued them sees Graph return.
 * Each prints the time from Graph's return to the last delivery against the optimum N·L/(4·M), and the
 * target: every message out within 1.25 × the optimum + 2 s.
 *
 *   npx tsx bench/backlog.ts [--n 20000] [--mailboxes 10] [--latency 50] [--down-after-restart 3000] [--size 10240] [--rounds restart,live]
 */

import path from 'node:path';
import { args, cleanup, ingest, machine, num, procFigures, sleep, startEmulatorChild, startRelay, table, verdict, type RelayChild } from './lib.js';

const a = args({ n: 20_000 }, ['mailboxes', 'latency', 'down-after-restart', 'size', 'sessions', 'rounds']);
const M = num(a.values.mailboxes, 10);
const L = num(a.values.latency, 50);
const downAfterRestartMs = num(a.values['down-after-restart'], 3000);
const size = num(a.values.size, 10 * 1024);
const sessions = num(a.values.sessions, 20);
const rounds = String(a.values.rounds ?? 'restart,live').split(',');
const optimumS = (a.n * L) / (4 * M) / 1000;
const targetS = 1.25 * optimumS + 2;

process.stdout.write(`backlog: ${a.n} messages queued over ${M} mailboxes while Graph and Entra ID are unreachable, then Graph back at ${L} ms latency; optimum ${optimumS.toFixed(2)} s, target ≤ ${targetS.toFixed(2)} s; ${machine()}\n`);

const emu = await startEmulatorChild({ latencyMs: L, mailboxConcurrency: 4 });
const relays: RelayChild[] = [];
const results: { round: string; tailS: number; lastPctS: number; ok: boolean }[] = [];
const rows: Record<string, string | number>[] = [];

/** Queues N messages into a fresh relay while Graph is unreachable; returns the relay. */
async function queueWhileDown(dir: string): Promise<RelayChild> {
  await emu.reset();
  await emu.setFaults({ latencyMs: L });
  await emu.setUnreachable(true);
  const relay = await startRelay({ dir, graph: emu.graph });
  relays.push(relay);
  const r = await ingest({ port: relay.port, n: a.n, concurrency: sessions, mode: 'reuse', size, from: (i) => `mailbox${i % M}@bench.example` });
  if (r.ok !== a.n) throw new Error(`only ${r.ok} of ${a.n} accepted: ${JSON.stringify(r.replies)} ${r.errors.join('; ')}`);
  await relay.waitFor('received', a.n, 300_000);
  await relay.waitFor('graph-unreachable', 1, 60_000);
  rows.push({ step: `${a.n} accepted while Graph is unreachable`, 's': r.ms / 1000, note: `${r.rate.toFixed(0)} msgs/s; ${relay.counts.deferred ?? 0} deferred, RSS ${procFigures(relay.pid).rssMB.toFixed(0)} MB` });
  return relay;
}

/** Graph returns: time from then to the last 202. */
async function graphBack(relay: RelayChild, round: string): Promise<void> {
  const backAt = Date.now();
  await emu.setUnreachable(false);
  // 99 % out, then the rest: a tail of messages waiting out timers of their own would show between the two.
  const most = await emu.waitForSent(Math.ceil(0.99 * a.n), Math.max(600_000, optimumS * 20_000));
  const all = await emu.waitForSent(a.n, Math.max(600_000, optimumS * 20_000));
  const lastPctS = (all.last - most.last) / 1000;
  const rate = a.n / ((all.last - all.first) / 1000);
  const tailS = (all.last - backAt) / 1000;
  const reachableS = ((relay.firstAt['graph-reachable'] ?? NaN) - backAt) / 1000;
  const firstS = (all.first - backAt) / 1000;
  const stats = await emu.stats();
  const ok = tailS <= targetS;
  results.push({ round, tailS, lastPctS, ok });
  rows.push({
    step: `${round}: Graph back → last of ${a.n} delivered`,
    's': tailS,
    note: `${(tailS / optimumS).toFixed(2)}x optimum ${optimumS.toFixed(2)} s; last 1 % took ${lastPctS.toFixed(2)} s; ${rate.toFixed(0)} msgs/s (Graph's limit ${((4 * M * 1000) / L).toFixed(0)}); "graph-reachable" at +${reachableS.toFixed(2)} s, first 202 at +${firstS.toFixed(2)} s; ${stats.throttled429} 429s; target ≤ ${targetS.toFixed(2)} s: ${verdict(ok)}`,
  });
}

try {
  if (rounds.includes('restart')) {
    const dir = path.join(a.dir, 'restart');
    const first = await queueWhileDown(dir);
    await first.stop();
    const relay = await startRelay({ dir, graph: emu.graph });
    relays.push(relay);
    rows.push({ step: 'restart (Graph still down): spawn → "started"', 's': ((relay.firstAt.started ?? NaN) - relay.spawnedAt) / 1000, note: `Graph stays down ${downAfterRestartMs} ms more` });
    await relay.waitFor('graph-unreachable', 1, 60_000);
    await sleep(downAfterRestartMs);
    await graphBack(relay, 'restart');
    await relay.stop();
  }
  if (rounds.includes('live')) {
    const relay = await queueWhileDown(path.join(a.dir, 'live'));
    await sleep(downAfterRestartMs);
    await graphBack(relay, 'no restart');
    await relay.stop();
  }
  process.stdout.write(`\n${table(rows)}\n`);
  process.stdout.write(
    `\nSUMMARY backlog: ${a.n} msgs, ${M} mailboxes, ${L} ms: ${results.map((r) => `${r.round} ${r.tailS.toFixed(2)} s (${(r.tailS / optimumS).toFixed(2)}x, last 1 % ${r.lastPctS.toFixed(2)} s)`).join(', ')} after Graph's return; optimum ${optimumS.toFixed(2)} s, target ≤ 1.25x + 2 s = ${targetS.toFixed(2)} s [${verdict(results.every((r) => r.ok))}]\n`,
  );
} finally {
  await emu.stop();
  for (const r of relays) await r.stop();
  cleanup(a.dir, a.keep);
}

/**
 * Queue scale: N messages (default 10,000) accepted while Graph is down (the emulator answers 503 to every
 * request, so each mailbox pauses after its first attempts), the relay's memory with all of them queued; then
 * the relay is stopped, Graph comes back, and a new relay process starts on the same spool: time from its
 * spawn to the first delivery, time to drain the queue (against the optimum N·L/(4·M)), and its memory.
 *
 *   npx tsx bench/queue-scale.ts [--n 10000] [--mailboxes 10] [--latency 50] [--global N] [--profile]
 *
 * With --prefill N: no SMTP; N small messages written straight into the spool, a relay started on them with
 * Graph unreachable, then Graph back (bench/queue-prefill.ts): RSS with the queue loaded, restart →
 * listening, Graph back → first delivery, and the drain's progress for --drain-seconds (default 30).
 *
 *   npx tsx bench/queue-scale.ts --prefill 1000000 [--mailboxes 10] [--latency 50] [--active-limit 20000] [--drain-seconds 30]
 */

import path from 'node:path';
import { prefillRun } from './queue-prefill.js';
import { args, cleanup, ingest, machine, num, procFigures, sleep, startEmulatorChild, startRelay, summarizeProfiles, table, verdict, type RelayChild } from './lib.js';

const a = args({ n: 10_000 }, ['mailboxes', 'latency', 'global', 'sessions', 'prefill', 'active-limit', 'drain-seconds']);
const M = num(a.values.mailboxes, 10);
const L = num(a.values.latency, 50);
const sessions = num(a.values.sessions, 20);
const globalConcurrency = a.values.global === undefined ? undefined : num(a.values.global, 32);
const profileDir = a.profile ? path.join(a.dir, 'profiles') : null;
const optimumS = (a.n * L) / (4 * M) / 1000;
const relayDir = path.join(a.dir, 'relay');
const delivery: Record<string, unknown> = globalConcurrency === undefined ? {} : { globalConcurrency };
if (a.values['active-limit'] !== undefined) delivery.activeLimit = num(a.values['active-limit'], 20_000);

if (a.values.prefill !== undefined) {
  const n = num(a.values.prefill, 1_000_000);
  process.stdout.write(`queue-scale --prefill: ${n} messages in the spool, ${M} mailboxes, Graph unreachable then back at ${L} ms latency; ${machine()}\n`);
  const emu = await startEmulatorChild({ latencyMs: L, mailboxConcurrency: 4 });
  try {
    await prefillRun({ emu, dir: a.dir, n, mailboxes: M, latencyMs: L, drainSeconds: num(a.values['drain-seconds'], 30), delivery });
  } finally {
    await emu.stop();
    cleanup(a.dir, a.keep);
  }
  process.exit(0);
}

process.stdout.write(`queue-scale: ${a.n} messages queued while Graph is unreachable, ${M} mailboxes, then drained at ${L} ms latency; ${machine()}\n`);

const emu = await startEmulatorChild({ latencyMs: L, mailboxConcurrency: 4 });
let relay: RelayChild | null = null;
try {
  // Phase 1: Graph down (503 to everything); everything accepted stays queued. The first attempts pause
  // their mailboxes, so most messages are not attempted at all while Graph is down. (Not resets: a reset
  // after the whole request leaves the outcome unknown, and such a message is looked up in Sent Items after
  // the restart before it is sent again; that is the crash test's business, not this one's.)
  await emu.setDown('503');
  relay = await startRelay({ dir: relayDir, graph: emu.graph, delivery });
  await sleep(500);
  const idle = procFigures(relay.pid);
  const idleMem = await relay.memory();
  const r = await ingest({ port: relay.port, n: a.n, concurrency: sessions, mode: 'reuse', from: (i) => `mailbox${i % M}@bench.example` });
  if (r.ok !== a.n) throw new Error(`only ${r.ok} of ${a.n} accepted: ${JSON.stringify(r.replies)} ${r.errors.join('; ')}`);
  await relay.waitFor('received', a.n, 300_000); // every message is in the spool
  await relay.waitFor('mailbox-paused', M, 60_000);
  await sleep(1000);
  const queued = procFigures(relay.pid);
  const queuedMem = await relay.memory();
  const deferred = relay.counts.deferred ?? 0;
  await relay.stop();
  relay = null;

  // Phase 2: Graph back, a new relay process on the same spool.
  await emu.reset();
  await emu.setFaults({ latencyMs: L });
  relay = await startRelay({ dir: relayDir, graph: emu.graph, delivery, profileDir });
  const spawnedAt = relay.spawnedAt;
  const startedAt = relay.firstAt.started ?? NaN;
  const first = await emu.waitForSent(1, 60_000);
  let peak = procFigures(relay.pid);
  const poll = setInterval(() => {
    const f = procFigures(relay?.pid);
    if (f.hwmMB > 0) peak = f;
  }, 500);
  const all = await emu.waitForSent(a.n, Math.max(300_000, optimumS * 20_000));
  clearInterval(poll);
  const end = procFigures(relay.pid);
  const endMem = await relay.memory();
  const stats = await emu.stats();
  const firstS = (first.first - spawnedAt) / 1000;
  const drainS = (all.last - spawnedAt) / 1000;
  const growthMB = queued.rssMB - idle.rssMB;
  const heap = (m: { heapUsedMB: number; heapTotalMB: number }): string => `${m.heapUsedMB.toFixed(0)}/${m.heapTotalMB.toFixed(0)}`;
  const rows = [
    { phase: 'relay started, empty (Graph down)', 'RSS MB': idle.rssMB, 'peak RSS MB': idle.hwmMB, 'heap used/total MB': heap(idleMem), 'time s': '', note: '' },
    { phase: `${a.n} accepted and queued (Graph down)`, 'RSS MB': queued.rssMB, 'peak RSS MB': queued.hwmMB, 'heap used/total MB': heap(queuedMem), 'time s': r.ms / 1000, note: `ingest ${r.rate.toFixed(0)} msgs/s; ${deferred} deferrals; RSS growth ${growthMB.toFixed(0)} MB, heap growth ${(queuedMem.heapUsedMB - idleMem.heapUsedMB).toFixed(0)} MB` },
    { phase: 'restart: spawn → "started" log', 'RSS MB': '', 'peak RSS MB': '', 'time s': (startedAt - spawnedAt) / 1000, note: '' },
    { phase: 'restart: spawn → first delivery', 'RSS MB': '', 'peak RSS MB': '', 'time s': firstS, note: '' },
    { phase: `restart: spawn → all ${a.n} delivered`, 'RSS MB': end.rssMB, 'peak RSS MB': Math.max(end.hwmMB, peak.hwmMB), 'heap used/total MB': heap(endMem), 'time s': drainS, note: `optimum ${optimumS.toFixed(2)} s (${(drainS / optimumS).toFixed(2)}x); 429s ${stats.throttled429}; relay CPU ${end.cpuS.toFixed(1)} s` },
  ];
  process.stdout.write(`\n${table(rows)}\n`);
  await emu.stop();
  await relay.stop();
  relay = null;
  await summarizeProfiles(profileDir);
  const ok = growthMB < 100 && firstS < 2;
  process.stdout.write(
    `\nSUMMARY queue-scale: ${a.n} queued: RSS growth ${growthMB.toFixed(0)} MB (target < 100 MB: ${verdict(growthMB < 100)}); after restart first delivery ${firstS.toFixed(2)} s (target < 2 s: ${verdict(firstS < 2)}), ` +
      `drained in ${drainS.toFixed(1)} s = ${(drainS / optimumS).toFixed(2)}x optimum, peak RSS ${Math.max(end.hwmMB, peak.hwmMB).toFixed(0)} MB, ${stats.throttled429} 429s [${verdict(ok)}]\n`,
  );
} finally {
  await emu.stop();
  await relay?.stop();
  cleanup(a.dir, a.keep || a.profile);
}

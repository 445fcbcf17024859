/**
 * Ingest: how fast the relay accepts 10 KB messages (250 after its fsync'd spool commit), against a bare
 * smtp-server that fsyncs each message into a spool folder before its 250, started by this script.
 *
 *   npx tsx bench/ingest.ts [--n 2000] [--sessions 20] [--size 10240] [--rounds 5] [--warmup 10000] [--profile] [--dir DIR]
 *
 * Rows, each the median of --rounds, reference and relay alternating so that machine noise hits both. The
 * relay's ratio is the median of the per-round ratios, each relay round against the reference round beside
 * it: on this shared machine the reference alone moved from 1605 to 2451 msgs/s within one 9-round run, and
 * a ratio of two medians taken at different moments carries that drift. The ratio of the medians is printed too.
 *   reuse        --sessions persistent sessions, MAIL/RCPT/DATA pipelined
 *   per-message  one connection per message, --sessions at a time; both servers greet at once (the relay's
 *                default greetingDelay 0; smtp-server alone would wait 100 ms before every greeting)
 * The relay runs in graph mode against the emulator (own process). "graph held" keeps every sendMail
 * unanswered (10 min latency), so only acceptance is measured, as for the reference; "graph instant" lets
 * the relay deliver while it accepts (emulator answers at once), which is the steady state.
 * Both relays run with limits.maxMessagesPerSession raised to 100,000: the bare server has no such limit,
 * and at the default (100) every session is closed with a 421 once per 100 messages and reconnects, which
 * measures the session limit rather than acceptance.
 */

import path from 'node:path';
import {
  args,
  cleanup,
  HELD_GRAPH,
  HELD_RELAY,
  ingest,
  machine,
  median,
  num,
  pct,
  procFigures,
  startBareServer,
  startEmulatorChild,
  startRelay,
  summarizeProfiles,
  table,
  verdict,
  type IngestResult,
} from './lib.js';

const a = args({ n: 2000 }, ['sessions', 'size', 'rounds', 'warmup']);
const sessions = num(a.values.sessions, 20);
const size = num(a.values.size, 10 * 1024);
const rounds = Math.max(1, num(a.values.rounds, 5));
// A fresh server, relay or bare, takes thousands of messages to settle (JIT): bench/warmup.ts measured CPU per
// message falling from 1.5–1.7 ms in the first 2000 to 0.4–0.6 ms after about 6000, both of them. Timed
// rounds begin after 10,000 each (5 × n for a small --n), so that they compare servers, not warm-ups.
const warmup = num(a.values.warmup, Math.min(10_000, 5 * a.n));
const profileDir = a.profile ? path.join(a.dir, 'profiles') : null;
const from = (i: number): string => `sender${i % 10}@bench.example`;

process.stdout.write(`ingest: ${a.n} messages of ${size} B, ${sessions} concurrent; ${machine()}\n`);

// Two emulators: the held relay's hung requests must not count against the instant relay's mailbox limit.
const emu = await startEmulatorChild(HELD_GRAPH);
const emuInstant = await startEmulatorChild({ latencyMs: 0, mailboxConcurrency: 4 });
const bare = await startBareServer(path.join(a.dir, 'bare-spool'), profileDir);
const held = await startRelay({ dir: path.join(a.dir, 'relay-held'), graph: emu.graph, profileDir, extra: HELD_RELAY });
let instant: Awaited<ReturnType<typeof startRelay>> | null = null;

type Mode = 'reuse' | 'per-message';
type Target = 'bare' | 'held' | 'instant';
const results: Record<string, IngestResult[]> = {};
const cpu: Record<string, number[]> = {};
const mainCpu: Record<string, number[]> = {};
/** CPU of this process (the SMTP client) per message: the load generator must cost the same for both servers. */
const clientCpu: Record<string, number[]> = {};
const reconnects: Record<string, number> = {};
let offset = 0;

async function run(target: Target, mode: Mode, n: number, measured: boolean): Promise<void> {
  const server = { bare, held, instant: instant! }[target];
  const { port, pid } = server;
  const p0 = procFigures(pid);
  const c0 = process.cpuUsage();
  const r = await ingest({ port, n, concurrency: sessions, mode, from, size, offset });
  const c1 = process.cpuUsage(c0);
  const p1 = procFigures(pid);
  offset += n;
  if (!measured) return;
  const key = `${target}/${mode}`;
  (results[key] ??= []).push(r);
  (cpu[key] ??= []).push((p1.cpuS - p0.cpuS) / (r.ms / 1000));
  (mainCpu[key] ??= []).push((p1.mainCpuS - p0.mainCpuS) / (r.ms / 1000));
  (clientCpu[key] ??= []).push((c1.user + c1.system) / 1e6 / (r.ms / 1000));
  reconnects[key] = (reconnects[key] ?? 0) + r.reconnects;
  if (r.failed) process.stdout.write(`  ${key}: ${r.failed} failed (replies ${JSON.stringify(r.replies)}) ${r.errors.join('; ')}\n`);
}

const rate = (key: string): number => median((results[key] ?? []).map((r) => r.rate));
/** Median over rounds of key's msgs/s ÷ the reference's in the same round. */
const pairedRatio = (key: string, ref: string): number => median((results[key] ?? []).map((r, i) => r.rate / (results[ref]?.[i]?.rate ?? NaN)));
/** Server CPU per accepted message: robust to machine load, unlike msgs/s. */
const cpuMs = (key: string, of = cpu): number => median((results[key] ?? []).map((r, i) => ((of[key]?.[i] ?? NaN) * 1000) / r.rate));

try {
  // Warm-up: JIT and connection pools of both servers, not timed.
  if (warmup > 0) {
    await run('bare', 'reuse', warmup, false);
    await run('held', 'reuse', warmup, false);
  }
  // ABBA order: whoever runs second inherits the first one's disk writeback, so the order alternates.
  for (let round = 0; round < rounds; round++) {
    const order: Target[] = round % 2 === 0 ? ['bare', 'held'] : ['held', 'bare'];
    for (const t of order) await run(t, 'reuse', a.n, true);
    for (const t of order) await run(t, 'per-message', a.n, true);
  }
  // The steady state: accepting while delivering. A fresh relay so that the held attempts do not count.
  instant = await startRelay({ dir: path.join(a.dir, 'relay-instant'), graph: emuInstant.graph, profileDir, name: 'relay-instant', extra: { limits: HELD_RELAY.limits } });
  if (warmup > 0) await run('instant', 'reuse', warmup, false);
  for (let round = 0; round < rounds; round++) await run('instant', 'reuse', a.n, true);
  const delivered = instant.counts.delivered ?? 0;
  const deferredInstant = instant.counts.deferred ?? 0;

  const bareReuse = rate('bare/reuse');
  const barePer = rate('bare/per-message');
  const rows = [
    { server: 'bare smtp-server + fsync (reference)', connections: `${sessions} sessions reused`, 'msgs/s': bareReuse, 'server CPU': pct(median(cpu['bare/reuse'] ?? [])), 'CPU ms/msg': cpuMs('bare/reuse'), 'main thread ms/msg': cpuMs('bare/reuse', mainCpu), 'client ms/msg': cpuMs('bare/reuse', clientCpu), 'vs reference': '100%' },
    { server: 'relay, graph held (acceptance only)', connections: `${sessions} sessions reused`, 'msgs/s': rate('held/reuse'), 'server CPU': pct(median(cpu['held/reuse'] ?? [])), 'CPU ms/msg': cpuMs('held/reuse'), 'main thread ms/msg': cpuMs('held/reuse', mainCpu), 'client ms/msg': cpuMs('held/reuse', clientCpu), 'vs reference': pct(pairedRatio('held/reuse', 'bare/reuse')) },
    { server: 'relay, graph instant (delivering too)', connections: `${sessions} sessions reused`, 'msgs/s': rate('instant/reuse'), 'server CPU': pct(median(cpu['instant/reuse'] ?? [])), 'CPU ms/msg': cpuMs('instant/reuse'), 'main thread ms/msg': cpuMs('instant/reuse', mainCpu), 'client ms/msg': cpuMs('instant/reuse', clientCpu), 'vs reference': pct(rate('instant/reuse') / bareReuse) },
    { server: 'bare smtp-server + fsync (reference)', connections: `1 per message, ${sessions} at once`, 'msgs/s': barePer, 'server CPU': pct(median(cpu['bare/per-message'] ?? [])), 'CPU ms/msg': cpuMs('bare/per-message'), 'main thread ms/msg': cpuMs('bare/per-message', mainCpu), 'client ms/msg': cpuMs('bare/per-message', clientCpu), 'vs reference': '100%' },
    { server: 'relay, graph held (acceptance only)', connections: `1 per message, ${sessions} at once`, 'msgs/s': rate('held/per-message'), 'server CPU': pct(median(cpu['held/per-message'] ?? [])), 'CPU ms/msg': cpuMs('held/per-message'), 'main thread ms/msg': cpuMs('held/per-message', mainCpu), 'client ms/msg': cpuMs('held/per-message', clientCpu), 'vs reference': pct(pairedRatio('held/per-message', 'bare/per-message')) },
  ];
  process.stdout.write(`\n${table(rows)}\n`);
  process.stdout.write(`(vs reference, held relay with reused sessions: the median of the per-round ratios, each round's relay against the reference beside it; server CPU: user+system CPU of the server process over the timed window, all threads; 100% = one core; main thread: the event loop's share, the rest being the thread pool and V8's helpers. instant relay: ${delivered} delivered, ${deferredInstant} deferred by the end of its runs; env UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '(default 4)'}; ` +
      `sessions reopened after a 421 (limits.maxMessagesPerSession) or a lost connection: ${Object.entries(reconnects).map(([k, v]) => `${k} ${v}`).join(', ')})\n`);
  process.stdout.write(`rounds, msgs/s in run order: ${Object.entries(results).map(([k, rs]) => `${k} ${rs.map((r) => r.rate.toFixed(0)).join(' ')}`).join('; ')}\n`);
  // The emulator goes first: closing it ends the held requests, so the relays stop at once (and write
  // their CPU profile when --profile is on).
  await Promise.all([emu.stop(), emuInstant.stop()]);
  await Promise.all([held.stop(), instant.stop(), bare.stop()]);
  instant = null;
  await summarizeProfiles(profileDir);
  const reuseRatio = pairedRatio('held/reuse', 'bare/reuse');
  const perRatio = pairedRatio('held/per-message', 'bare/per-message');
  process.stdout.write(
    `\nSUMMARY ingest: reused ${rate('held/reuse').toFixed(0)} msgs/s = ${pct(reuseRatio)} of bare fsync'd smtp-server ${bareReuse.toFixed(0)} msgs/s (median of ${rounds} per-round ratios; ratio of the medians ${pct(rate('held/reuse') / bareReuse)}; target >= 85%: ${verdict(reuseRatio >= 0.85)}); ` +
      `CPU per message relay ${cpuMs('held/reuse').toFixed(2)} ms vs bare ${cpuMs('bare/reuse').toFixed(2)} ms (main thread ${cpuMs('held/reuse', mainCpu).toFixed(2)} vs ${cpuMs('bare/reuse', mainCpu).toFixed(2)} ms); one connection per message ${rate('held/per-message').toFixed(0)} msgs/s = ${pct(perRatio)} of bare ${barePer.toFixed(0)} (target >= 90%: ${verdict(perRatio >= 0.9)}); ` +
      `delivering too ${rate('instant/reuse').toFixed(0)} msgs/s = ${pct(rate('instant/reuse') / bareReuse)}\n`,
  );
} finally {
  await Promise.all([emu.stop(), emuInstant.stop()]);
  await Promise.all([held.stop(), instant?.stop(), bare.stop()]);
  cleanup(a.dir, a.keep || a.profile);
}

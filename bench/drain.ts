/**
 * Drain: N messages across M mailboxes with Graph latency L. The relay runs against the emulator (own
 * process, mailbox concurrency 4 like Exchange Online); all N are sent over 20 SMTP sessions, and delivery
 * starts at once. Drain time is from the first 250 to the last 202, against the optimum N·L / (4·M):
 * every mailbox with 4 requests in flight all the time.
 *
 *   npx tsx bench/drain.ts [--n 1000] [--mailboxes 10] [--latency 200] [--jitter 20] [--global N] [--profile]
 *
 * --global sets delivery.globalConcurrency (default: the relay's default). Also reported: 429s the relay
 * drew (self-inflicted: it exceeded the mailbox limit), the largest in-flight count any mailbox saw, and
 * the relay's peak RSS (VmHWM).
 */

import path from 'node:path';
import { args, cleanup, ingest, machine, num, pct, procFigures, startEmulatorChild, startRelay, summarizeProfiles, table, verdict } from './lib.js';

const a = args({ n: 1000 }, ['mailboxes', 'latency', 'jitter', 'global', 'sessions']);
const M = num(a.values.mailboxes, 10);
const L = num(a.values.latency, 200);
const jitter = num(a.values.jitter, 20);
const sessions = num(a.values.sessions, 20);
const globalConcurrency = a.values.global === undefined ? undefined : num(a.values.global, 32);
const profileDir = a.profile ? path.join(a.dir, 'profiles') : null;
const PER_MAILBOX = 4;
const optimumS = (a.n * L) / (PER_MAILBOX * M) / 1000;

process.stdout.write(`drain: ${a.n} messages, ${M} mailboxes, Graph latency ${L} ±${jitter} ms, globalConcurrency ${globalConcurrency ?? 'default'}; ${machine()}\n`);

const emu = await startEmulatorChild({ latencyMs: L, jitterMs: jitter, mailboxConcurrency: PER_MAILBOX });
const relay = await startRelay({
  dir: path.join(a.dir, 'relay'),
  graph: emu.graph,
  profileDir,
  delivery: globalConcurrency === undefined ? {} : { globalConcurrency },
});
try {
  const rss0 = procFigures(relay.pid);
  const sent = ingest({ port: relay.port, n: a.n, concurrency: sessions, mode: 'reuse', from: (i) => `mailbox${i % M}@bench.example` });
  const done = emu.waitForSent(a.n, Math.max(120_000, optimumS * 20_000));
  const r = await sent;
  if (r.ok !== a.n) throw new Error(`only ${r.ok} of ${a.n} accepted: ${JSON.stringify(r.replies)} ${r.errors.join('; ')}`);
  const s = await done;
  const drainS = (s.last - r.firstOkAt) / 1000;
  const stats = await emu.stats();
  const fig = procFigures(relay.pid);
  const maxInFlight = Math.max(0, ...Object.values(stats.perMailbox).map((m) => m.maxInFlight));
  const deferred = relay.counts.deferred ?? 0;
  const paused = relay.counts['mailbox-paused'] ?? 0;
  const ratio = drainS / optimumS;
  const globalBound = globalConcurrency ?? 32;
  const rows = [
    { what: 'optimum N·L/(4·M)', 'drain s': optimumS, 'msgs/s': a.n / optimumS, 'vs optimum': '1.00x', '429s': 0, 'max in flight/mailbox': PER_MAILBOX, 'relay peak RSS MB': '' },
    {
      what: `relay (globalConcurrency ${globalConcurrency ?? 'default'})`,
      'drain s': drainS,
      'msgs/s': a.n / drainS,
      'vs optimum': `${ratio.toFixed(2)}x`,
      '429s': stats.throttled429,
      'max in flight/mailbox': maxInFlight,
      'relay peak RSS MB': fig.hwmMB,
    },
  ];
  process.stdout.write(`\n${table(rows)}\n`);
  process.stdout.write(
    `(ingest of all ${a.n} took ${(r.ms / 1000).toFixed(2)} s at ${r.rate.toFixed(0)} msgs/s; first 202 ${((s.first - r.firstOkAt) / 1000).toFixed(2)} s after the first 250; ` +
      `deferred ${deferred}, mailbox pauses ${paused}; relay RSS ${rss0.rssMB.toFixed(0)} MB at start, relay CPU ${fig.cpuS.toFixed(1)} s; ` +
      `with globalConcurrency ${globalBound} < 4·M = ${PER_MAILBOX * M}, the best possible is ${((a.n * L) / Math.min(globalBound, PER_MAILBOX * M) / 1000).toFixed(2)} s)\n`,
  );
  await emu.stop();
  await relay.stop();
  await summarizeProfiles(profileDir);
  const ok = ratio <= 1.1 && stats.throttled429 === 0;
  process.stdout.write(
    `\nSUMMARY drain: ${a.n} msgs / ${M} mailboxes @ ${L} ms in ${drainS.toFixed(2)} s = ${ratio.toFixed(2)}x optimum ${optimumS.toFixed(2)} s, ${stats.throttled429} 429s, max ${maxInFlight} in flight per mailbox, peak RSS ${fig.hwmMB.toFixed(0)} MB (target <= 1.10x with no 429: ${verdict(ok)}) ${pct(optimumS / drainS)} of optimum throughput\n`,
  );
} finally {
  await emu.stop();
  await relay.stop();
  cleanup(a.dir, a.keep || a.profile);
}

/**
 * Phases: where the time of one connection per message goes, step by step as the client sees it, for the
 * relay and a reference taking turns (ABBA): the bare fsync'd smtp-server, or with --b another relay build.
 *
 *   npx tsx bench/phases.ts [--n 1000] [--rounds 8] [--warmup 8000] [--b OTHER/dist/cli.js]
 *
 * 20 clients at once, each: connect → 220 greeting → EHLO → MAIL, RCPT, DATA pipelined → body → 250 →
 * QUIT → close. smtp-server alone holds every greeting for 100 ms (early-talker check); the relay's
 * listeners and the bare server greet at once (greetingDelay 0), a build from before that pays the 100 ms.
 * Medians and 90th percentiles in ms over every message of every round.
 */

import path from 'node:path';
import { args, cleanup, HELD_GRAPH, HELD_RELAY, ingest, machine, makeMessage, median, num, SmtpClient, startBareServer, startEmulatorChild, startRelay, table } from './lib.js';

const a = args({ n: 1000 }, ['rounds', 'warmup', 'b']);
const rounds = Math.max(2, num(a.values.rounds, 8));
const warmup = num(a.values.warmup, 8000);
const other = typeof a.values.b === 'string' ? path.resolve(a.values.b) : null;
const CLIENTS = 20;
const PHASES = ['greeting', 'EHLO', 'MAIL+RCPT+DATA', 'body → 250', 'QUIT → close'] as const;
const from = (i: number): string => `sender${i % 10}@bench.example`;

/** One connection, one message: the duration of each phase in ms. */
async function cycle(port: number, msg: Buffer, i: number): Promise<number[]> {
  const marks = [performance.now()];
  const c = await SmtpClient.connect(port);
  marks.push(performance.now());
  await c.ehlo('phases.bench.example');
  marks.push(performance.now());
  c.socket.write(`MAIL FROM:<${from(i)}>\r\nRCPT TO:<rcpt${i % 50}@dest.example>\r\nDATA\r\n`);
  for (let k = 0; k < 3; k++) await c.reply();
  marks.push(performance.now());
  c.socket.write(msg);
  await c.reply();
  marks.push(performance.now());
  await c.quit();
  marks.push(performance.now());
  return marks.slice(1).map((t, j) => t - marks[j]!);
}

async function round(port: number, n: number, msg: Buffer): Promise<{ rate: number; phases: number[][] }> {
  const phases: number[][] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      for (let i = next++; i < n; i = next++) phases.push(await cycle(port, msg, i));
    }),
  );
  return { rate: (n / (performance.now() - t0)) * 1000, phases };
}

const p90 = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length * 0.9)] ?? NaN;

process.stdout.write(`phases: one connection per message, ${CLIENTS} at once, ${a.n} per round, ${rounds} rounds; relay vs ${other ?? 'bare fsync\'d smtp-server'}; ${machine()}\n`);
const emu = await startEmulatorChild(HELD_GRAPH);
const relay = await startRelay({ dir: path.join(a.dir, 'relay'), graph: emu.graph, extra: HELD_RELAY });
const reference = other
  ? await startRelay({ dir: path.join(a.dir, 'other'), graph: emu.graph, extra: HELD_RELAY, cli: other })
  : await startBareServer(path.join(a.dir, 'bare-spool'));
const servers = { relay, reference } as const;
try {
  if (warmup > 0) for (const s of Object.values(servers)) await ingest({ port: s.port, n: warmup, concurrency: CLIENTS, mode: 'reuse', from });
  const msg = makeMessage(0, from(0), 'rcpt0@dest.example');
  const results: Record<keyof typeof servers, { rates: number[]; phases: number[][] }> = { relay: { rates: [], phases: [] }, reference: { rates: [], phases: [] } };
  for (let r = 0; r < rounds; r++) {
    for (const k of r % 2 === 0 ? (['reference', 'relay'] as const) : (['relay', 'reference'] as const)) {
      const out = await round(servers[k].port, a.n, msg);
      results[k].rates.push(out.rate);
      results[k].phases.push(...out.phases);
    }
  }
  const row = (k: keyof typeof servers, name: string): Record<string, string | number> => {
    const r = results[k];
    const cells: Record<string, string | number> = { server: name, 'msgs/s': median(r.rates) };
    PHASES.forEach((p, j) => {
      const xs = r.phases.map((x) => x[j]!);
      cells[p] = `${median(xs).toFixed(2)} / ${p90(xs).toFixed(2)}`;
    });
    return cells;
  };
  process.stdout.write(`\n${table([row('reference', other ? `other build (${other})` : 'bare smtp-server + fsync'), row('relay', 'relay, graph held')])}\n`);
  process.stdout.write('(each phase: median / 90th percentile, ms, as the client sees it; msgs/s: median of the rounds)\n');
  const body = (k: keyof typeof servers): number => median(results[k].phases.map((x) => x[3]!));
  const rest = (k: keyof typeof servers): number => median(results[k].phases.map((x) => x[0]! + x[1]! + x[2]! + x[4]!));
  process.stdout.write(
    `\nSUMMARY phases: body → 250 median relay ${body('relay').toFixed(2)} ms vs ${other ? 'other' : 'bare'} ${body('reference').toFixed(2)} ms; ` +
      `the other phases (greeting included) relay ${rest('relay').toFixed(2)} ms vs ${rest('reference').toFixed(2)} ms; ` +
      `msgs/s relay ${median(results.relay.rates).toFixed(1)} vs ${median(results.reference.rates).toFixed(1)}\n`,
  );
} finally {
  // The relays' held requests would be retried, not drained: nothing of theirs is worth a graceful stop.
  await emu.stop();
  await Promise.all([relay.stop('SIGKILL'), reference.stop(other ? 'SIGKILL' : 'SIGTERM')]);
  cleanup(a.dir, a.keep);
}

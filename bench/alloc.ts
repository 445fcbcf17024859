/**
 * Allocation: bytes of JS heap each accepted 10 KB message costs the relay and the bare reference, and
 * where they are allocated. Every allocation is sampled, including what the garbage collector has already
 * freed: garbage is CPU (the young-generation collector's work grows with it), and after the system calls
 * it is what separates the relay's CPU per message from the reference's.
 *
 *   npx tsx bench/alloc.ts [--n 6000] [--warmup 3000] [--top 15]
 *
 * Both servers get bench/alloc-hook.mjs through NODE_OPTIONS; sampling runs only around the timed batch
 * (20 reused sessions, as the ingest benchmark's first row; the relay's Graph requests are held).
 */

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { shortUrl } from './profile-summary.js';
import { args, BENCH, cleanup, HELD_GRAPH, HELD_RELAY, ingest, machine, num, sleep, startBareServer, startEmulatorChild, startRelay, table, type Child } from './lib.js';

const a = args({ n: 6000 }, ['warmup', 'top']);
const warmup = num(a.values.warmup, 3000);
const top = num(a.values.top, 15);
const from = (i: number): string => `sender${i % 10}@bench.example`;
const hook = (out: string): Record<string, string> => ({ NODE_OPTIONS: `--import ${pathToFileURL(path.join(BENCH, 'alloc-hook.mjs')).href}`, BENCH_ALLOC_OUT: out });

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

async function appears(file: string, what: string): Promise<void> {
  for (const deadline = Date.now() + 60_000; !existsSync(file); await sleep(20)) {
    if (Date.now() > deadline) throw new Error(`no ${what} after 60 s (${file})`);
  }
}

/** Bytes by allocation site (function, file:line) from a sampling heap profile. */
function sites(file: string): Map<string, number> {
  const out = new Map<string, number>();
  const walk = (n: HeapNode): void => {
    const { functionName, url, lineNumber } = n.callFrame;
    const key = `${functionName || '(anonymous)'}  ${shortUrl(url)}${url ? `:${lineNumber + 1}` : ''}`;
    out.set(key, (out.get(key) ?? 0) + n.selfSize);
    for (const c of n.children) walk(c);
  };
  walk((JSON.parse(readFileSync(file, 'utf8')) as { head: HeapNode }).head);
  return out;
}

async function measure(server: Child & { port: number }, out: string, offset: number): Promise<{ perMsg: Map<string, number>; total: number }> {
  await ingest({ port: server.port, n: warmup, concurrency: 20, mode: 'reuse', from, offset });
  server.child.kill('SIGUSR2');
  await appears(`${out}.started`, 'sampling');
  const r = await ingest({ port: server.port, n: a.n, concurrency: 20, mode: 'reuse', from, offset: offset + warmup });
  server.child.kill('SIGUSR2');
  await appears(out, 'allocation profile');
  const perMsg = new Map([...sites(out)].map(([k, v]) => [k, v / r.ok]));
  return { perMsg, total: [...perMsg.values()].reduce((x, y) => x + y, 0) };
}

process.stdout.write(`alloc: ${a.n} messages of 10 KB over 20 reused sessions, after ${warmup} unsampled; ${machine()}\n`);
const emu = await startEmulatorChild(HELD_GRAPH);
const relayOut = path.join(a.dir, 'relay.heapprofile');
const bareOut = path.join(a.dir, 'bare.heapprofile');
const relay = await startRelay({ dir: path.join(a.dir, 'relay'), graph: emu.graph, env: hook(relayOut), extra: HELD_RELAY });
const bare = await startBareServer(path.join(a.dir, 'bare-spool'), null, hook(bareOut));
try {
  const b = await measure(bare, bareOut, 0);
  const r = await measure(relay, relayOut, warmup + a.n);
  const kb = (x: number): string => (x / 1024).toFixed(1);
  const rows = [...r.perMsg]
    .sort((x, y) => y[1] - x[1])
    .slice(0, top)
    .map(([site, bytes]) => ({ 'allocation site (relay)': site, 'B/msg': Math.round(bytes), 'bare B/msg': Math.round(b.perMsg.get(site) ?? 0) }));
  process.stdout.write(`\n${table(rows)}\n`);
  process.stdout.write(`\nSUMMARY alloc: relay ${kb(r.total)} KB of JS heap per message, bare fsync'd smtp-server ${kb(b.total)} KB (${(r.total / b.total).toFixed(2)}x)\n`);
} finally {
  await Promise.all([emu.stop(), relay.stop(), bare.stop()]);
  cleanup(a.dir, a.keep);
}

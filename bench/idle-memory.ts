/**
 * Idle memory: the relay started in graph mode (its first token fetched, listeners up, nothing queued),
 * measured after it settles, with and without the delivery history (its worker thread and SQLite); and
 * what each package the relay imports at start costs an empty Node process, to show where the rest goes.
 *
 *   npx tsx bench/idle-memory.ts [--rounds 3] [--settle 5000]
 */

import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { args, cleanup, machine, median, num, procFigures, sleep, startEmulatorChild, startRelay, table, verdict, REPO } from './lib.js';

const a = args({ n: 1 }, ['rounds', 'settle']);
const rounds = num(a.values.rounds, 3);
const settleMs = num(a.values.settle, 5000);
process.stdout.write(`idle-memory: ${rounds} starts per shape, RSS ${settleMs} ms after "started"; ${machine()}\n`);

interface ImportCost {
  pkg: string;
  rssMB: number;
  fileMB: number;
  growthMB: number;
}

/** RSS of a fresh Node process after importing `packages` one after another, each step's growth; `fileMB`: the part in mapped files. */
function importCosts(packages: string[]): ImportCost[] {
  const script = `const out = []; const { readFileSync } = await import('node:fs');
const kb = (k) => Number(new RegExp('^' + k + ':\\\\s+(\\\\d+)', 'm').exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
let last = kb('VmRSS'); out.push({ pkg: '(empty node)', rssMB: last, fileMB: kb('RssFile'), growthMB: 0 });
for (const p of ${JSON.stringify(packages)}) { await import(p); await new Promise((r) => setTimeout(r, 200)); const now = kb('VmRSS'); out.push({ pkg: p, rssMB: now, fileMB: kb('RssFile'), growthMB: now - last }); last = now; }
process.stdout.write(JSON.stringify(out));`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO, encoding: 'utf8' })) as ImportCost[];
}

const emu = await startEmulatorChild({ latencyMs: 0, mailboxConcurrency: 1000 });
const results: Record<string, number[]> = { 'history on (default)': [], 'history off': [] };
const fileMB: Record<string, number[]> = { 'history on (default)': [], 'history off': [] };
try {
  for (let i = 0; i < rounds; i++) {
    for (const shape of Object.keys(results)) {
      const dir = path.join(a.dir, `r${i}-${shape.startsWith('history on') ? 'on' : 'off'}`);
      const relay = await startRelay({ dir, graph: emu.graph, extra: shape === 'history off' ? { history: { enabled: false } } : {} });
      await sleep(settleMs);
      const f = procFigures(relay.pid);
      results[shape]!.push(f.rssMB);
      fileMB[shape]!.push(f.rssFileMB);
      await relay.stop();
    }
  }
} finally {
  await emu.stop();
  cleanup(a.dir, a.keep);
}

const rows = Object.entries(results).map(([shape, xs]) => ({ relay: shape, 'median RSS MB': median(xs), 'of it in mapped files (node, libraries)': median(fileMB[shape]!), 'each start MB': xs.map((x) => x.toFixed(0)).join(' ') }));
process.stdout.write(`\n${table(rows)}\n`);
const costs = importCosts(['pino', 'yaml', 'smtp-server', 'prom-client', 'undici', '@azure/msal-node', './dist/app/create-relay.js']);
process.stdout.write(`\nWhat the start's imports cost an empty Node process (RSS after each import):\n${table(costs.map((c) => ({ import: c.pkg, 'RSS MB': c.rssMB, 'of it in mapped files': c.fileMB, 'growth MB': c.growthMB })))}\n`);
const on = median(results['history on (default)']!);
process.stdout.write(`\nSUMMARY idle-memory: idle RSS ${on.toFixed(0)} MB with the history, ${median(results['history off']!).toFixed(0)} MB without (target 60 MB: ${verdict(on <= 60)}); an empty Node process ${costs[0]!.rssMB.toFixed(0)} MB (${costs[0]!.fileMB.toFixed(0)} MB of it the mapped node binary and libraries), its imports alone ${costs.at(-1)!.rssMB.toFixed(0)} MB\n`);

/** The benchmarks in bench/ run end to end with a tiny N: each prints its summary line and exits 0 (no timing asserted). */

import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(import.meta.dirname, '../..');

function runBench(script: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'bench', script), ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 170_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('bench smoke', () => {
  const cases: [string, string[], RegExp][] = [
    ['ingest.ts', ['--n', '50', '--warmup', '10', '--rounds', '1'], /^SUMMARY ingest: /m],
    ['drain.ts', ['--n', '50', '--mailboxes', '5', '--latency', '20', '--jitter', '5'], /^SUMMARY drain: /m],
    ['fleet.ts', ['--n', '60', '--mailboxes', '3', '--latency', '20', '--jitter', '5', '--lease', '1'], /^SUMMARY fleet: .*nothing lost, nothing twice: PASS/m],
    ['queue-scale.ts', ['--n', '50', '--mailboxes', '5', '--latency', '10'], /^SUMMARY queue-scale: /m],
    ['queue-scale.ts', ['--prefill', '300', '--active-limit', '100', '--drain-seconds', '5', '--latency', '10'], /^SUMMARY queue-scale prefill: /m],
    ['backlog.ts', ['--n', '50', '--mailboxes', '5', '--latency', '10', '--down-after-restart', '500'], /^SUMMARY backlog: /m],
    ['alloc.ts', ['--n', '30', '--warmup', '10'], /^SUMMARY alloc: relay \d+\.\d KB .* bare fsync'd smtp-server \d+\.\d KB/m],
    ['warmup.ts', ['--n', '20', '--rounds', '2'], /^SUMMARY warmup: CPU per message, first round → median of the later half: bare \d+\.\d\d → \d+\.\d\d ms, relay /m],
    ['ab.ts', ['--b', path.join(REPO, 'dist/cli.js'), '--n', '20', '--rounds', '2', '--warmup', '10'], /^SUMMARY ab: /m],
    ['idle-memory.ts', ['--rounds', '1', '--settle', '300'], /^SUMMARY idle-memory: idle RSS \d+ MB with the history, \d+ MB without .*; an empty Node process \d+ MB \(\d+ MB of it the mapped node binary and libraries\), its imports alone \d+ MB$/m],
    ['phases.ts', ['--n', '20', '--rounds', '2', '--warmup', '10'], /^SUMMARY phases: body → 250 median relay \d+\.\d\d ms vs bare \d+\.\d\d ms; /m],
  ];
  for (const [script, args, summary] of cases) {
    it(`${script}${args[0] === '--prefill' ? ' --prefill' : ''} prints its summary and exits 0`, { timeout: 180_000 }, async () => {
      const r = await runBench(script, args);
      expect(r.stdout, `stderr:\n${r.stderr}`).toMatch(summary);
      expect(r.code, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0);
    });
  }
});

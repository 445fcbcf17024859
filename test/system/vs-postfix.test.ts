/**
 * npm run bench:vs-postfix end to end with a tiny N: it starts a Postfix of its own, measures, prints its
 * summary, exits 0, and leaves the system's Postfix as it found it. Needs root and Debian's postfix, so CI
 * runs it on its own (deploy/ci-postfix.sh sets RELAY_POSTFIX_TEST=1) and `npm test` never shows it skipped.
 */

import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(import.meta.dirname, '../..');
/** Every file of the system's Postfix configuration (none is main.cf after "No configuration"), hashed. */
const systemConfig = (): Record<string, string> =>
  Object.fromEntries(
    readdirSync('/etc/postfix', { recursive: true, encoding: 'utf8' })
      .filter((f) => statSync(`/etc/postfix/${f}`).isFile())
      .map((f) => [f, createHash('sha256').update(readFileSync(`/etc/postfix/${f}`)).digest('hex')]),
  );
const systemMasterRunning = (): boolean => {
  try {
    execFileSync('postfix', ['status'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

function vsPostfix(extra: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'bench/vs-postfix.ts'), '--n', '100', '--rounds', '1', ...extra], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('bench:vs-postfix', () => {
  it('prints the table and its summary against a private Postfix, and leaves the system Postfix alone', { timeout: 300_000 }, async () => {
    const before = { config: systemConfig(), running: systemMasterRunning() };
    expect(Object.keys(before.config)).toContain('master.cf');
    const r = await vsPostfix([]);
    expect(r.stdout, r.stderr).toMatch(/\| one connection per message \| \d+ +\| \d+ \(\d+\.\d\d×\)/);
    expect(r.stdout).toMatch(/\| connections reused +\| \d+ +\| \d+ \(\d+\.\d\d×\)/);
    expect(r.stdout).toMatch(/\| idle after start +\| \d+ +\| \d+ +\| \d+ +\|/);
    expect(r.stdout).toMatch(/\| connections reused +\| \d+\.\d\d \(\d+ % kernel\) +\| \d+\.\d\d \(\d+ % kernel\) /);
    expect(r.stdout).toMatch(/^machine CPU busy while smtp-source ran .*reused: postfix \d+ %, relay \d+ %, bare \d+ %$/m);
    expect(r.stdout).toMatch(/^SUMMARY vs-postfix: one connection per message \d+\.\d\d× Postfix .* relay RSS idle \d+ MB/m);
    expect(r.code, r.stderr).toBe(0);
    expect({ config: systemConfig(), running: systemMasterRunning() }).toEqual(before);
  });

  it('--far-side sink: the relay delivers every message to the Graph sink, tokens from the emulator', { timeout: 300_000 }, async () => {
    const r = await vsPostfix(['--far-side', 'sink']);
    expect(r.stdout, r.stderr).toMatch(/the relay delivering to the Graph sink/);
    expect(r.stdout).toMatch(/\| connections reused +\| \d+ +\| \d+ \(\d+\.\d\d×\)/);
    expect(r.stdout).toMatch(/Graph sink \(the relay's far side\)/);
    expect(r.stdout).toMatch(/^SUMMARY vs-postfix \(Graph sink\): one connection per message \d+\.\d\d× Postfix /m);
    expect(r.code, r.stderr).toBe(0);
  });
});

/**
 * `queue move --to SPOOL_DIR`: a replica removed for good hands its queue to another relay's spool (running
 * or stopped), with nothing lost and nothing sent twice; an attempt left in flight, or a move cut short,
 * makes the target look in Sent Items before it sends.
 */

import { execFile } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { describe, expect, it } from 'vitest';
import type { SentRecord } from '../emulator/types.js';
import { useTestbed } from '../helpers/graph-relay.js';
import { CLI, type RelayProcess } from '../helpers/relay-process.js';

const run = promisify(execFile);
const bed = useTestbed();

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '' } }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
}

async function send(relay: RelayProcess, n: number, tag: string): Promise<string[]> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, secure: false, ignoreTLS: true });
  const ids: string[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const messageId = `<${tag}-${i}@move.test>`;
      ids.push(messageId);
      await transport.sendMail({ from: `box${i % 3}@contoso.example`, to: 'someone@fabrikam.example', subject: `${tag} ${i}`, text: `message ${i}`, messageId });
    }
  } finally {
    transport.close();
  }
  await relay.waitForLogs((l) => l.event === 'received', n);
  return ids;
}

const queued = (spoolDir: string): string[] =>
  readdirSync(path.join(spoolDir, 'queue'))
    .filter((f) => f.endsWith('.msg'))
    .map((f) => f.slice(0, -4))
    .sort();

function countById(sent: SentRecord[]): Map<string, number> {
  const seen = new Map<string, number>();
  for (const rec of sent) {
    const id = /^Message-ID:\s*(\S+)/im.exec(rec.mime?.toString('latin1').split('\r\n\r\n')[0] ?? '')?.[1] ?? '(none)';
    seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  return seen;
}

describe('queue move', () => {
  it("hands a stopped relay's queue to a running one, which delivers each message once, looking first for the one left in flight", { timeout: 60_000 }, async () => {
    bed.emu.setDown('503');
    const source = await bed.relay();
    const ids = await send(source, 12, 'running');
    const elsewhere = mkdtempSync(path.join(tmpdir(), 'move-target-'));
    for (const d of ['queue', 'tmp']) mkdirSync(path.join(elsewhere, d));
    const refused = await cli(['queue', 'move', '--config', source.configPath, '--to', elsewhere]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/is running \(pid \d+\): stop it first/);
    const own = await cli(['queue', 'move', '--config', source.configPath, '--to', source.spoolDir]);
    expect(own.stderr).toMatch(/the target spool is this relay's own/);
    await source.stop();
    const qids = queued(source.spoolDir);
    expect(qids).toHaveLength(12);
    // As if the source had crashed with an attempt of the first message in flight.
    appendFileSync(path.join(source.spoolDir, 'inflight.log'), `S ${qids[0]}\n`);

    bed.emu.setDown(false);
    bed.emu.reset();
    const target = await bed.relay();
    const r = await cli(['queue', 'move', '--config', source.configPath, '--to', target.spoolDir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^12 message\(s\) moved to .* \(its relay, pid \d+, took them\)$/m);
    expect(r.stdout).toMatch(/^1 of them had an attempt in flight/m);
    expect(queued(source.spoolDir)).toEqual([]);
    expect(existsSync(path.join(source.spoolDir, 'moving.log'))).toBe(false);
    expect(readFileSync(path.join(source.spoolDir, 'inflight.log'), 'latin1')).toBe('');

    await bed.emu.waitForSent(12, 30_000);
    const adopted = await target.waitForLogs((l) => l.event === 'queue-adopt', 12);
    expect(adopted.map((l) => l.qid).sort()).toEqual(qids);
    // The one left in flight was looked for in Sent Items before it went out.
    await target.waitForLog((l) => l.event === 'lookup-not-found' && l.qid === qids[0]);
    await target.waitForLogs((l) => l.event === 'delivered', 12);
    const seen = countById(bed.emu.sent);
    expect(ids.filter((id) => seen.get(id) !== 1)).toEqual([]);
    expect(seen.size).toBe(12);
  });

  it('finishes a move that was cut short, into a stopped relay, without losing or doubling a message', { timeout: 60_000 }, async () => {
    bed.emu.setDown('503');
    const source = await bed.relay();
    const ids = await send(source, 6, 'cut');
    await source.stop();
    const target = await bed.relay();
    await target.stop();
    const qids = queued(source.spoolDir);
    // An earlier run adopted the first into the target and stopped before removing it here; of the second
    // it wrote the intent only (adopted and delivered, or never adopted: the move cannot know).
    copyFileSync(path.join(source.spoolDir, 'queue', `${qids[0]}.msg`), path.join(target.spoolDir, 'queue', `${qids[0]}.msg`));
    writeFileSync(path.join(source.spoolDir, 'moving.log'), `M ${qids[0]}\nM ${qids[1]}\n`);

    // A lock naming a live process that is no relay (another container's pid): refused, with what to do.
    writeFileSync(path.join(source.spoolDir, 'relay.lock'), `${process.pid}\n`);
    const stale = await cli(['queue', 'move', '--config', source.configPath, '--to', target.spoolDir]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/relay\.lock names pid \d+, alive here, but no relay answers on its control channel/);
    unlinkSync(path.join(source.spoolDir, 'relay.lock'));

    const r = await cli(['queue', 'move', '--config', source.configPath, '--to', target.spoolDir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^5 message\(s\) moved to .* \(its relay takes them when it starts\)$/m);
    expect(r.stdout).toMatch(/^1 found in the target already/m);
    expect(r.stdout).toMatch(/^1 moved with a Sent Items look-up first/m);
    expect(queued(source.spoolDir)).toEqual([]);
    expect(queued(target.spoolDir)).toEqual(qids);
    const state = JSON.parse(readFileSync(path.join(target.spoolDir, 'queue', `${qids[1]}.json`), 'utf8')) as { pendingLookup?: { reason: string } };
    expect(state.pendingLookup?.reason).toBe('moved');
    expect(readdirSync(path.join(target.spoolDir, 'tmp'))).toEqual([]);

    bed.emu.setDown(false);
    bed.emu.reset();
    const restarted = await bed.relay({}, { dir: target.dir });
    await bed.emu.waitForSent(6, 30_000);
    await restarted.waitForLogs((l) => l.event === 'delivered', 6);
    const seen = countById(bed.emu.sent);
    expect(ids.filter((id) => seen.get(id) !== 1)).toEqual([]);
    expect(seen.size).toBe(6);
  });
});

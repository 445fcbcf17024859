/** The in-flight journal: group commit, what a crash leaves unfinished, compaction, and a failed write that stops the send. */

import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InflightJournal, recoverInflight, unfinishedIn } from '../../src/spool/journal.js';
import { Spool } from '../../src/spool/spool.js';
import type { Envelope } from '../../src/spool/envelope.js';
import { newQueueId } from '../../src/spool/queue-id.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'journal-'));
  dirs.push(d);
  return d;
}

const ids = Array.from({ length: 40 }, () => newQueueId());

describe('InflightJournal', () => {
  it('writes all the starts of one event-loop turn with one write and one fsync, and each start is on disk when it resolves', async () => {
    const dir = tempDir();
    const j = new InflightJournal(dir);
    await j.restart();
    const before = { ...j.stats };
    await Promise.all(ids.map((id) => j.started(id)));
    expect(j.stats.writes - before.writes).toBe(1);
    expect(j.stats.syncs - before.syncs).toBe(1);
    expect(unfinishedIn(readFileSync(j.file, 'latin1'))).toEqual(new Set(ids));
    // Finishes ride along with the next write and need no fsync of their own.
    for (const id of ids.slice(0, 30)) j.finished(id);
    const started = j.started(ids[0]!);
    await started;
    expect(j.stats.syncs - before.syncs).toBe(2);
    expect(unfinishedIn(readFileSync(j.file, 'latin1'))).toEqual(new Set([ids[0]!, ...ids.slice(30)]));
    expect(j.isOpen(ids[0]!)).toBe(true);
    expect(j.isOpen(ids[1]!)).toBe(false);
    // Finishes with no start to ride along are written at the latest when the journal closes (a graceful stop).
    for (const id of [ids[0]!, ...ids.slice(30)]) j.finished(id);
    await j.close();
    expect(unfinishedIn(readFileSync(j.file, 'latin1'))).toEqual(new Set());
    expect(j.stats.syncs - before.syncs).toBe(2);
  });

  it('past its size limit, is rewritten with only the attempts still open, while starts in other turns go on', async () => {
    const dir = tempDir();
    const j = new InflightJournal(dir, 200);
    await j.restart();
    for (const [i, id] of ids.entries()) {
      await j.started(id); // one turn each: a write and an fsync each
      if (i % 4 !== 0) j.finished(id);
    }
    await j.started(ids[1]!);
    expect(j.stats.rewrites).toBeGreaterThan(1);
    const open = new Set([...ids.filter((_, i) => i % 4 === 0), ids[1]!]);
    expect(unfinishedIn(readFileSync(j.file, 'latin1'))).toEqual(open);
    expect(readFileSync(j.file, 'latin1').length).toBeLessThan(600);
    await j.close();
  });

  it('reads what a crash left unfinished, skipping torn and foreign lines', () => {
    const [a, b, c] = ids;
    const text = `S ${a}\nS ${b}\nF ${a}\nS ${c}\nF ${c}\nS ${a}\nS not-a-queue-id\ngarbage\nS ${c!.slice(0, 5)}`;
    expect(unfinishedIn(text)).toEqual(new Set([b, a]));
  });

  it('at start marks every unfinished message still queued with a pending look-up, and then starts empty', async () => {
    const dir = tempDir();
    const spool = new Spool(path.join(dir, 'spool'));
    await spool.open();
    const queued = await spoolMessage(spool);
    const gone = newQueueId(); // delivered (removed) before the crash: nothing to look up
    const j = new InflightJournal(spool.directory);
    writeFileSync(j.file, `S ${queued}\nS ${gone}\n`);
    const marked = await recoverInflight(spool, j, Date.UTC(2026, 0, 2, 3, 4, 5));
    expect(marked).toEqual([queued]);
    expect((await spool.readEnvelope('queue', queued)).pendingLookup).toEqual({ since: '2026-01-02T03:04:05.000Z', lookups: 0, reason: 'crash' });
    expect(readFileSync(j.file, 'latin1')).toBe('');
    expect(await new InflightJournal(spool.directory).unfinished()).toEqual(new Set());
    await j.close();
    await spool.close();
  });

  it('rejects the start when it cannot be written (and the attempt then sends nothing); once it can, a fresh file holds every open start', async () => {
    const dir = tempDir();
    const j = new InflightJournal(dir);
    // The journal's first write makes a fresh file through inflight.log.tmp: a folder in its way fails it, even for root.
    mkdirSync(`${j.file}.tmp`);
    await expect(j.started(ids[0]!)).rejects.toThrow(/EISDIR|illegal operation/i);
    rmdirSync(`${j.file}.tmp`);
    await j.started(ids[1]!);
    expect(unfinishedIn(readFileSync(j.file, 'latin1'))).toEqual(new Set([ids[0]!, ids[1]!]));
    await j.close();
    await expect(j.started(ids[2]!)).rejects.toThrow(/closed/);
  });
});

async function spoolMessage(spool: Spool): Promise<string> {
  const id = newQueueId();
  const w = spool.beginMessage(id);
  await w.write(Buffer.from('Subject: x\r\n\r\nbody\r\n'));
  const env: Envelope = {
    version: 1, id, mailFrom: 'a@contoso.example', rcptTo: ['b@contoso.example'], mailbox: 'a@contoso.example', bcc: [],
    clientAddress: '127.0.0.1', clientHostname: 'localhost', helo: 'x', listener: 'default', receivedAt: new Date().toISOString(),
    size: w.bytes, attempts: 0, nextAttemptAt: new Date().toISOString(), lastError: null,
  };
  await spool.commit(w, env);
  return id;
}

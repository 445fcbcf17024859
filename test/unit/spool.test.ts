/** The spool: commit order, crash recovery, and queue ids. */

import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { newQueueId, QUEUE_ID_RE } from '../../src/spool/queue-id.js';
import { Spool, type Envelope } from '../../src/spool/spool.js';

function envelope(id: string): Envelope {
  const now = new Date().toISOString();
  return { version: 1, id, mailFrom: 'a@contoso.example', rcptTo: ['b@contoso.example'], mailbox: 'a@contoso.example', bcc: [], clientAddress: '127.0.0.1', clientHostname: '[127.0.0.1]', helo: 'x', listener: 'default', receivedAt: now, size: 3, attempts: 0, nextAttemptAt: now, lastError: null };
}

async function openSpool(): Promise<Spool> {
  const s = new Spool(mkdtempSync(path.join(tmpdir(), 'spool-')));
  await s.open();
  return s;
}

describe('spool', () => {
  it('holds nothing in queue/ until commit, then both files', async () => {
    const s = await openSpool();
    const id = newQueueId();
    const w = await s.beginMessage(id);
    await w.write(Buffer.from('abc'));
    expect(readdirSync(s.queueDir)).toEqual([]);
    await s.commit(w, envelope(id));
    expect(readdirSync(s.queueDir).sort()).toEqual([`${id}.eml`, `${id}.json`]);
    expect(readdirSync(s.tmpDir)).toEqual([]);
    expect(await s.ids('queue')).toEqual([id]);
  });

  it('after a crash, removes half-written files and data that was never committed', async () => {
    const s = await openSpool();
    const kept = newQueueId();
    const w = await s.beginMessage(kept);
    await w.write(Buffer.from('abc'));
    await s.commit(w, envelope(kept));
    // A crash mid-ingest: a tmp file, and data renamed into queue/ whose envelope never followed.
    writeFileSync(path.join(s.tmpDir, 'zzz.eml'), 'partial');
    const orphan = newQueueId();
    writeFileSync(s.dataPath('queue', orphan), 'never acknowledged');
    const report = await s.recover();
    expect(report).toMatchObject({ removedTmp: 1, removedOrphans: 1, completedMoves: 0 });
    expect(await s.ids('queue')).toEqual([kept]);
    expect(existsSync(s.dataPath('queue', orphan))).toBe(false);
  });

  it('finishes a move to dead/ that a crash interrupted between the two renames', async () => {
    const s = await openSpool();
    const id = newQueueId();
    const w = await s.beginMessage(id);
    await w.write(Buffer.from('abc'));
    await s.commit(w, envelope(id));
    const { rename } = await import('node:fs/promises');
    await rename(s.envelopePath('queue', id), s.envelopePath('dead', id));
    const report = await s.recover();
    expect(report.completedMoves).toBe(1);
    expect(existsSync(s.dataPath('dead', id))).toBe(true);
    expect(await s.ids('queue')).toEqual([]);
    expect(await s.ids('dead')).toEqual([id]);
  });

  it('makes short ids that are unique and ordered by time', () => {
    const ids = Array.from({ length: 20_000 }, () => newQueueId());
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids.slice(0, 100)) expect(id).toMatch(QUEUE_ID_RE);
    expect(newQueueId(Date.UTC(2030, 0, 1)) > newQueueId(Date.UTC(2029, 0, 1))).toBe(true);
  });
});

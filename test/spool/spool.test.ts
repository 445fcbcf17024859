/** The spool: commit order, crash recovery, and queue ids. */

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { newQueueId, QUEUE_ID_RE } from '../../src/spool/queue-id.js';
import { readRange } from '../../src/mime/message-file.js';
import { Spool } from '../../src/spool/spool.js';
import type { Envelope } from '../../src/spool/envelope.js';
import { spoolDsn } from '../../src/delivery/bounce.js';
import { SpoolFileError } from '../../src/errors.js';

function envelope(id: string): Envelope {
  const now = new Date().toISOString();
  return { version: 1, id, mailFrom: 'a@contoso.example', rcptTo: ['b@contoso.example'], mailbox: 'a@contoso.example', bcc: [], clientAddress: '127.0.0.1', clientHostname: '[127.0.0.1]', helo: 'x', listener: 'default', receivedAt: now, size: 3, attempts: 0, nextAttemptAt: now, lastError: null };
}

const opened: Spool[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});

async function openSpool(): Promise<Spool> {
  const s = new Spool(mkdtempSync(path.join(tmpdir(), 'spool-')));
  await s.open();
  opened.push(s);
  return s;
}

async function spoolOne(s: Spool, body = 'abc'): Promise<string> {
  const id = newQueueId();
  const w = s.beginMessage(id);
  await w.write(Buffer.from(body));
  await s.commit(w, { ...envelope(id), size: Buffer.byteLength(body) });
  return id;
}

describe('spool', () => {
  it('holds nothing in queue/ until commit, then one file: the message followed by its envelope', async () => {
    const s = await openSpool();
    const id = newQueueId();
    const w = s.beginMessage(id);
    await w.write(Buffer.from('Subject: x\r\n\r\nbody\r\n'));
    expect(readdirSync(s.queueDir)).toEqual([]);
    await s.commit(w, { ...envelope(id), size: w.bytes });
    expect(readdirSync(s.queueDir)).toEqual([`${id}.msg`]);
    expect(readdirSync(s.tmpDir)).toEqual([]);
    expect(await s.ids('queue')).toEqual([id]);
    const file = readFileSync(s.messagePath('queue', id), 'latin1');
    expect(file.startsWith('Subject: x\r\n\r\nbody\r\n{"version":1,')).toBe(true);
    expect(file).toMatch(/\n#envelope \d{10}\n$/);
    const { env, data } = await s.load('queue', id);
    expect(env).toMatchObject({ id, rcptTo: ['b@contoso.example'], size: 20, attempts: 0 });
    expect(data.size).toBe(20);
    expect(data.bytes?.toString('latin1')).toBe('Subject: x\r\n\r\nbody\r\n');
  });

  it('leaves nothing behind for a writer aborted before any byte, and names the file it could not create', async () => {
    const s = await openSpool();
    const w = s.beginMessage(newQueueId());
    await w.abort();
    expect(readdirSync(s.tmpDir)).toEqual([]);
    // The open fails (tmp/ is gone): reported by the commit, with its path, and queue/ stays empty.
    rmSync(s.tmpDir, { recursive: true });
    const id = newQueueId();
    const broken = s.beginMessage(id);
    broken.write(Buffer.from('abc'));
    await expect(s.commit(broken, envelope(id))).rejects.toMatchObject({ code: 'ENOENT', path: broken.tmpPath });
    await broken.abort();
    expect(readdirSync(s.queueDir)).toEqual([]);
  });

  it('leaves no half-made notification in tmp/ when spooling a bounce fails', async () => {
    const s = await openSpool();
    const id = await spoolOne(s, 'Subject: x\r\n\r\nbody\r\n');
    const env = { ...(await s.readEnvelope('queue', id)), lastError: { at: new Date().toISOString(), kind: 'permanent' as const, reason: 'recipient', message: 'no such user' } };
    await s.move('queue', 'dead', env);
    // queue/ is gone: the notification is written and fsynced in tmp/, then its rename fails.
    rmSync(s.queueDir, { recursive: true });
    await expect(spoolDsn(s, 'dead', env, 'failed', 'postmaster@contoso.example', 'relay.contoso.example')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(readdirSync(s.tmpDir)).toEqual([]);
    expect(readdirSync(s.deadDir).sort()).toEqual([`${id}.json`, `${id}.msg`]);
  });

  it('fails the commit, and keeps nothing, when the file can take only part of a message (a disk filling up)', () => {
    // A file size limit of 8 KB (ulimit -f 8) makes the kernel take a short write and refuse the next
    // (EFBIG; SIGXFSZ ignored), as a filling disk does with ENOSPC: a short count must not pass for a whole message.
    const dir = mkdtempSync(path.join(tmpdir(), 'spool-'));
    const script = path.join(dir, 'commit.mts');
    writeFileSync(
      script,
      `import { Spool } from ${JSON.stringify(path.resolve(import.meta.dirname, '../../src/spool/spool.ts'))};
const s = new Spool(${JSON.stringify(path.join(dir, 'spool'))});
await s.open();
const id = '4dSQQcg0pZ7p';
const w = s.beginMessage(id);
w.write(Buffer.alloc(20000, 97));
const now = new Date().toISOString();
const env = { version: 1, id, mailFrom: 'a@contoso.example', rcptTo: ['b@contoso.example'], mailbox: 'a@contoso.example', bcc: [], clientAddress: '127.0.0.1', clientHostname: '[127.0.0.1]', helo: 'x', listener: 'default', receivedAt: now, size: w.bytes, attempts: 0, nextAttemptAt: now, lastError: null };
await s.commit(w, env).then(() => console.log('committed'), async (err) => { await w.abort(); console.log('refused', err.code); });
`,
    );
    const r = spawnSync('bash', ['-c', `trap '' XFSZ; ulimit -f 8; exec "$0" --import tsx "$1"`, process.execPath, script], { cwd: path.resolve(import.meta.dirname, '../..'), encoding: 'utf8' });
    expect(r.stdout.trim(), r.stderr).toBe('refused EFBIG');
    expect(readdirSync(path.join(dir, 'spool', 'queue'))).toEqual([]);
    expect(readdirSync(path.join(dir, 'spool', 'tmp'))).toEqual([]);
  });

  it('reads the envelope of a large file from its tail and never hands out the trailer as message bytes', async () => {
    const s = await openSpool();
    const body = 'x'.repeat(600 * 1024);
    const id = await spoolOne(s, body);
    const { env, data } = await s.load('queue', id);
    expect(env.size).toBe(body.length);
    expect(data.bytes).toBeUndefined();
    let streamed = 0;
    for await (const c of readRange(data.file, 0, data.size)) streamed += c.length;
    expect(streamed).toBe(body.length);
  });

  it('keeps later changes in <id>.json, which wins over the trailer, and removes both on delivery', async () => {
    const s = await openSpool();
    const id = await spoolOne(s);
    const env = await s.readEnvelope('queue', id);
    await s.updateEnvelope('queue', { ...env, attempts: 3 });
    expect(readdirSync(s.queueDir).sort()).toEqual([`${id}.json`, `${id}.msg`]);
    expect((await s.readEnvelope('queue', id)).attempts).toBe(3);
    await s.remove('queue', id);
    expect(readdirSync(s.queueDir)).toEqual([]);
  });

  it('reports a damaged file by name instead of reading past its message', async () => {
    const s = await openSpool();
    const id = await spoolOne(s);
    const file = s.messagePath('queue', id);
    writeFileSync(file, readFileSync(file).subarray(0, -5));
    await expect(s.readEnvelope('queue', id)).rejects.toThrow(SpoolFileError);
    await expect(s.readEnvelope('queue', id)).rejects.toThrow(file);
  });

  it('after a crash, removes half-written files and state files whose message is gone', async () => {
    const s = await openSpool();
    const kept = await spoolOne(s);
    writeFileSync(path.join(s.tmpDir, 'zzz.msg'), 'partial');
    // Delivered just before the crash: the message was unlinked, its state file not yet.
    const gone = newQueueId();
    writeFileSync(s.statePath('queue', gone), JSON.stringify(envelope(gone)));
    const report = await s.recover();
    expect(report).toMatchObject({ removedTmp: 1, removedOrphans: 1, completedMoves: 0 });
    expect(await s.ids('queue')).toEqual([kept]);
    expect(readdirSync(s.queueDir)).toEqual([`${kept}.msg`]);
  });

  it('repairs, after it listens, only what the previous process left: state files of ids from the floor on are its own', async () => {
    const s = new Spool(mkdtempSync(path.join(tmpdir(), 'spool-')));
    opened.push(s);
    const old = newQueueId();
    await s.openDirs();
    writeFileSync(s.statePath('queue', old), JSON.stringify(envelope(old))); // its message was delivered before a crash
    writeFileSync(path.join(s.tmpDir, 'half.msg'), 'partial');
    expect(await s.openForAccepting()).toBe(1);
    const floor = newQueueId();
    // This process's message: its state file is written while recovery has not run yet, and is kept.
    const mine = await spoolOne(s);
    await s.updateEnvelope('queue', { ...(await s.readEnvelope('queue', mine)), attempts: 3 });
    const orphanOfMine = newQueueId();
    writeFileSync(s.statePath('queue', orphanOfMine), '{}');
    expect(await s.recover(floor)).toEqual({ removedTmp: 0, removedOrphans: 1, completedMoves: 0 });
    expect(readdirSync(s.queueDir).sort()).toEqual([`${mine}.json`, `${mine}.msg`, `${orphanOfMine}.json`].sort());
    expect((await s.readEnvelope('queue', mine)).attempts).toBe(3);
  });

  it('finishes a move to dead/ that a crash interrupted after the new state was written', async () => {
    const s = await openSpool();
    const id = await spoolOne(s);
    const env = await s.readEnvelope('queue', id);
    await s.updateEnvelope('queue', { ...env, attempts: 1 });
    // move() writes dead/<id>.json first; the crash came before queue/<id>.msg followed.
    await s.updateEnvelope('dead', { ...env, attempts: 2, lastError: { at: env.receivedAt, kind: 'permanent', reason: 'x', message: 'x' } });
    const report = await s.recover();
    expect(report.completedMoves).toBe(1);
    expect(await s.ids('queue')).toEqual([]);
    expect(readdirSync(s.queueDir)).toEqual([]);
    expect(await s.ids('dead')).toEqual([id]);
    expect((await s.readEnvelope('dead', id)).attempts).toBe(2);
  });

  it('moves a message and its state between queue/ and dead/', async () => {
    const s = await openSpool();
    const id = await spoolOne(s);
    const env = await s.readEnvelope('queue', id);
    await s.move('queue', 'dead', { ...env, attempts: 1 });
    expect(readdirSync(s.queueDir)).toEqual([]);
    expect(readdirSync(s.deadDir).sort()).toEqual([`${id}.json`, `${id}.msg`]);
    await s.move('dead', 'queue', { ...env, attempts: 0 });
    expect(readdirSync(s.deadDir)).toEqual([]);
    expect(await s.ids('queue')).toEqual([id]);
    expect((await s.load('queue', id)).data.bytes?.toString()).toBe('abc');
  });

  it('makes short ids that are unique and ordered by time', () => {
    const ids = Array.from({ length: 20_000 }, () => newQueueId());
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids.slice(0, 100)) expect(id).toMatch(QUEUE_ID_RE);
    expect(newQueueId(Date.UTC(2030, 0, 1)) > newQueueId(Date.UTC(2029, 0, 1))).toBe(true);
  });

  it('keeps ids of one process unique and in order past 52 in one millisecond, without the random part', () => {
    const now = Date.UTC(2031, 0, 1);
    const ids = Array.from({ length: 500 }, () => newQueueId(now));
    // Time and sequence alone (the first 8 characters) must differ: the burst borrows the next milliseconds.
    expect(new Set(ids.map((id) => id.slice(0, 8))).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });
});

/** The history's SQLite tables: batches written, every search key, a message's story, retention by age and size, a stale lock. */

import { mkdirSync, mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { clearStaleLock, retryBusy } from '../../src/history/database.js';
import { HistoryStore, keysOf } from '../../src/history/store.js';
import type { AcceptedRecord } from '../../src/history/types.js';
import { newQueueId, queueIdAt } from '../../src/spool/queue-id.js';

const dirs: string[] = [];
function tempFile(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'history-'));
  dirs.push(d);
  return path.join(d, 'history.db');
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const DAY = 86_400_000;

function accepted(at: number, over: Partial<AcceptedRecord> = {}): AcceptedRecord {
  return { t: 'accepted', qid: newQueueId(at), at, listener: 'default', client: '192.0.2.10', user: null, tls: 'TLSv1.3', helo: 'printer', sender: 'scanner@contoso.example', rcpts: ['alice@contoso.example'], mailbox: 'scans@contoso.example', messageId: '<abc@printer>', size: 1234, subject: null, ...over };
}

describe('history store', () => {
  it('finds a message by each key and by time, newest first, and tells its story', () => {
    const store = new HistoryStore(tempFile());
    const t0 = Date.UTC(2026, 0, 10, 9);
    const a = accepted(t0, { rcpts: ['Alice@Contoso.example', 'bob@contoso.example'], messageId: '<Scan-1@printer3>', client: '10.0.3.7', user: 'floor3' });
    const b = accepted(t0 + 60_000, { sender: 'other@contoso.example', client: '10.0.4.1', messageId: '<x@y>' });
    store.write([a, b]);
    store.write([
      { t: 'event', qid: a.qid, at: t0 + 1000, kind: 'deferred', state: null, attempt: 1, status: 503, code: 'ServiceUnavailable', requestId: 'req-1', reason: 'service-unavailable' },
      { t: 'event', qid: a.qid, at: t0 + 5000, kind: 'delivered', state: 'delivered', attempt: 2, status: 202, requestId: 'req-2', route: 'mime' },
    ]);
    const ids = (q: Parameters<HistoryStore['search']>[0]): string[] => store.search(q).map((m) => m.qid);
    expect(ids({ qid: a.qid })).toEqual([a.qid]);
    expect(ids({ messageId: 'scan-1@printer3' })).toEqual([a.qid]);
    expect(ids({ messageId: '<Scan-1@printer3>' })).toEqual([a.qid]);
    // b has the default recipient, alice too: both, newest first.
    expect(ids({ recipient: 'alice@contoso.example' })).toEqual([b.qid, a.qid]);
    expect(ids({ sender: 'SCANNER@contoso.example' })).toEqual([a.qid]);
    expect(ids({ client: '10.0.4.1' })).toEqual([b.qid]);
    expect(ids({ user: 'Floor3' })).toEqual([a.qid]);
    expect(ids({ since: t0 - 1000, until: t0 + 120_000 })).toEqual([b.qid, a.qid]);
    expect(ids({ since: t0 + 30_000 })).toEqual([b.qid]);
    expect(ids({ recipient: 'bob@contoso.example', client: '10.0.4.1' })).toEqual([]);
    expect(ids({ recipient: 'bob@contoso.example', user: 'floor3', state: 'delivered' })).toEqual([a.qid]);
    const story = store.story(a.qid)!;
    expect(story).toMatchObject({ state: 'delivered', attempts: 2, client: '10.0.3.7', user: 'floor3', tls: 'TLSv1.3', lastError: '503 ServiceUnavailable' });
    expect(story.events.map((e) => [e.kind, e.status, e.requestId])).toEqual([
      ['deferred', 503, 'req-1'],
      ['delivered', 202, 'req-2'],
    ]);
    expect(store.story('nothing')).toBeNull();
    store.close();
  });

  it('keeps the history across a reopen, and a record written twice once', () => {
    const file = tempFile();
    const s1 = new HistoryStore(file);
    const a = accepted(Date.now());
    s1.write([a, a]);
    s1.close();
    const s2 = new HistoryStore(file);
    expect(s2.count()).toBe(1);
    expect(s2.search({ qid: a.qid })[0]!.sender).toBe('scanner@contoso.example');
    s2.close();
  });

  it('prunes messages past the retention with their events and index entries, then the oldest while over the size', () => {
    const store = new HistoryStore(tempFile());
    const now = Date.now();
    const old = accepted(now - 40 * DAY);
    const fresh = accepted(now - DAY);
    store.write([old, fresh, { t: 'event', qid: old.qid, at: now - 40 * DAY, kind: 'delivered', state: 'delivered' }]);
    expect(store.prune(now - 30 * DAY, 1024 ** 3)).toBe(1);
    expect(store.prune(now - 30 * DAY, 1024 ** 3)).toBe(0);
    expect(store.story(old.qid)).toBeNull();
    const left = (store.db.all('SELECT k FROM k') as { k: string }[]).map((r) => r.k).sort();
    expect(left).toEqual(keysOf(fresh).sort());
    // Over the size limit: the oldest go, whatever their age.
    expect(store.prune(now - 30 * DAY, 1)).toBe(1);
    expect(store.count()).toBe(0);
    store.close();
  });

  it('time bounds are queue ids: every id made in a millisecond sorts between that millisecond\'s bounds', () => {
    const t = Date.UTC(2026, 5, 1, 12, 0, 0, 123);
    for (let i = 0; i < 50; i++) {
      const id = newQueueId(t + 10_000 + i);
      expect(id >= queueIdAt(t + 10_000 + i, 'first') && id <= queueIdAt(t + 10_000 + i, 'last')).toBe(true);
      expect(id > queueIdAt(t, 'last')).toBe(true);
    }
  });

  it('a lock folder left by a killed process is removed; a fresh one is a lock', () => {
    const file = tempFile();
    mkdirSync(`${file}.lock`);
    expect(clearStaleLock(file)).toBe(false);
    const old = (Date.now() - 120_000) / 1000;
    utimesSync(`${file}.lock`, old, old);
    expect(clearStaleLock(file)).toBe(true);
    // A live lock makes a write wait, then fail as busy.
    const store = new HistoryStore(file);
    mkdirSync(`${file}.lock`);
    expect(() => retryBusy(() => store.write([accepted(Date.now())]), 50)).toThrow(/locked|busy/i);
    rmSync(`${file}.lock`, { recursive: true });
    store.write([accepted(Date.now())]);
    expect(store.count()).toBe(1);
    store.close();
  });
});

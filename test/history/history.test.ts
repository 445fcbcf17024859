/** The history as the relay feeds it: events pushed, batches written by the worker thread, searched, kept across a restart. */

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { HistoryConfig } from '../../src/config/visibility.js';
import type { SendResult } from '../../src/delivery/senders.js';
import { fanOut, historyDeliveryEvents } from '../../src/history/feed.js';
import { History } from '../../src/history/history.js';
import { HistoryStore } from '../../src/history/store.js';
import { HistoryWorker, type FromWorker } from '../../src/history/worker.js';
import { createLogger } from '../../src/observability/logger.js';
import type { Envelope } from '../../src/spool/envelope.js';
import { newQueueId } from '../../src/spool/queue-id.js';

const dirs: string[] = [];
function config(): HistoryConfig {
  const d = mkdtempSync(path.join(tmpdir(), 'history-'));
  dirs.push(d);
  return { enabled: true, file: path.join(d, 'history.db'), retentionMs: 30 * 86_400_000, maxBytes: 1024 ** 3, storeSubjects: false, silenceFactor: 4, minSilenceMs: 3_600_000, messageTrace: true };
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const log = createLogger('silent');

/** The nice value of each thread of this process (/proc/self/task/TID/stat, field 19). */
function niceOfThreads(): number[] {
  return readdirSync('/proc/self/task').map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  });
}

function envelope(over: Partial<Envelope> = {}): Envelope {
  const at = Date.now();
  return { version: 1, id: newQueueId(at), mailFrom: 'scanner@contoso.example', rcptTo: ['alice@contoso.example'], mailbox: 'scans@contoso.example', bcc: [], clientAddress: '10.0.3.7', clientHostname: '', helo: 'printer3', listener: 'default', receivedAt: new Date(at).toISOString(), size: 2048, attempts: 0, nextAttemptAt: new Date(at).toISOString(), lastError: null, ...over };
}

describe('history (worker thread)', () => {
  it('records acceptance and every attempt, finds the message, and keeps it and the devices across a restart', async () => {
    const cfg = config();
    const h = new History({ cfg, log, flushMs: 50 });
    await h.start();
    // The worker thread runs at nice 19: under load the SMTP event loop gets the cores first.
    expect(niceOfThreads()).toContain(19);
    const seen: string[] = [];
    const events = fanOut(historyDeliveryEvents(h), { queued: () => seen.push('queued'), vanished: () => undefined, delivered: () => seen.push('delivered'), deferred: () => seen.push('deferred'), deadLettered: () => undefined, bounced: () => undefined, graphResponse: () => seen.push('graph'), unknownOutcome: () => seen.push('unknown') });
    const env = envelope();
    h.accepted(env, Date.parse(env.receivedAt), { messageId: '<scan-7@printer3>', subject: 'secret plans', user: 'floor3', tls: 'TLSv1.3' });
    env.attempts = 1;
    const throttled: SendResult = { route: 'mime', status: 429, code: 'ApplicationThrottled', requestId: 'req-a', message: 'slow down', verdict: { kind: 'transient', reason: 'throttled', throttle: { retryAfterMs: 1000 } } } as SendResult;
    events.deferred(env, throttled);
    events.graphResponse(throttled);
    env.attempts = 2;
    events.unknownOutcome(env, 'found');
    events.delivered(env, { route: 'mime', status: 202, requestId: 'req-b', verdict: { kind: 'delivered' } } as SendResult, 1234);
    expect(seen).toEqual(['deferred', 'graph', 'unknown', 'delivered']);
    const found = await h.search({ messageId: 'scan-7@printer3' });
    expect(found.map((m) => m.qid)).toEqual([env.id]);
    // Subjects are not kept unless history.storeSubjects says so.
    expect(found[0]).toMatchObject({ state: 'delivered', attempts: 2, user: 'floor3', tls: 'TLSv1.3', subject: null });
    const story = await h.story(env.id);
    expect(story!.events.map((e) => [e.kind, e.status, e.code ?? null, e.requestId])).toEqual([
      ['deferred', 429, 'ApplicationThrottled', 'req-a'],
      ['outcome-unknown', undefined, null, undefined],
      ['delivered', 202, null, 'req-b'],
    ]);
    expect(story!.events[1]).toMatchObject({ reason: 'found', detail: expect.stringMatching(/Sent Items/) });
    expect(h.mailboxErrors.get('scans@contoso.example')?.error).toMatch(/429 ApplicationThrottled/);
    await h.close();
    expect(h.stats).toMatchObject({ written: 4, failed: 0, dropped: 0 });

    const again = new History({ cfg, log });
    await again.start();
    expect((await again.search({ user: 'floor3' })).map((m) => m.qid)).toEqual([env.id]);
    expect(again.devices.list(Date.now()).map((d) => [d.id, d.total])).toEqual([['user:floor3', 1]]);
    await again.close();
  });

  it('a final failure shows on the device that sent the message, and a queue tool\'s action joins the story', async () => {
    const h = new History({ cfg: config(), log, flushMs: 50 });
    await h.start();
    const env = envelope({ clientAddress: '10.0.4.4' });
    h.accepted(env, Date.now(), { messageId: null, subject: null, user: null, tls: null });
    env.attempts = 1;
    env.lastError = { at: new Date().toISOString(), kind: 'permanent', reason: 'invalid-recipients', status: 400, code: 'ErrorInvalidRecipients', message: 'no such user' };
    historyDeliveryEvents(h).deadLettered(env, 'invalid-recipients');
    h.action(env.id, 'requeued', 'alice');
    const story = await h.story(env.id);
    expect(story!.state).toBe('queued');
    expect(story!.events.map((e) => [e.kind, e.by ?? null])).toEqual([
      ['dead-lettered', null],
      ['requeued', 'alice'],
    ]);
    expect(h.devices.list(Date.now())[0]).toMatchObject({ id: 'address:10.0.4.4', lastError: expect.stringContaining('ErrorInvalidRecipients') });
    await h.close();
  });
});

describe('history worker', () => {
  it('waits while another process holds the file, then writes; gives a batch up only after 30 s of that', async () => {
    const cfg = config();
    const store = new HistoryStore(cfg.file);
    const posted: FromWorker[] = [];
    let onPost: (() => void) | null = null;
    let now = 1_000_000;
    const w = new HistoryWorker(store, { file: cfg.file, retentionMs: cfg.retentionMs, maxBytes: cfg.maxBytes }, (m) => (posted.push(m), onPost?.()), () => now);
    const env = envelope();
    mkdirSync(`${cfg.file}.lock`); // a command line reading right now
    w.handle({ type: 'write', records: [{ t: 'accepted', qid: env.id, at: now, listener: 'default', client: '10.0.0.1', user: null, tls: null, helo: 'x', sender: 'a@b.example', rcpts: ['c@d.example'], mailbox: 'm@d.example', messageId: null, size: 1, subject: null }], devices: [] });
    expect(posted).toEqual([]);
    const written = new Promise<void>((resolve) => (onPost = resolve));
    rmSync(`${cfg.file}.lock`, { recursive: true });
    await written; // the worker's own retry timer finds the lock gone
    expect(posted).toEqual([{ type: 'written', records: 1 }]);
    mkdirSync(`${cfg.file}.lock`);
    w.handle({ type: 'write', records: [], devices: [{ id: 'address:x', kind: 'address', firstSeen: 0, lastSeen: 0, day: '', today: 0, total: 0, gapMs: 0, lastError: null, lastErrorAt: null, tls: null, via: null }] });
    now += 31_000;
    const later = envelope();
    w.handle({ type: 'write', records: [{ t: 'event', qid: later.id, at: now, kind: 'retry', state: null, by: 'queue tool' }], devices: [] });
    // The first batch waited over 30 s and is given up; the one behind it still waits.
    expect(posted.slice(1).map((m) => m.type)).toEqual(['write-failed']);
    rmSync(`${cfg.file}.lock`, { recursive: true });
    w.handle({ type: 'close' });
    expect(posted.slice(2)).toEqual([{ type: 'written', records: 1 }, { type: 'closed' }]);
  });

  it('prunes in chunks past the retention, and says how many went', async () => {
    const cfg = config();
    const store = new HistoryStore(cfg.file);
    const now = Date.now();
    const old = Array.from({ length: 5 }, () => envelope());
    store.write(old.map((e, i) => ({ t: 'accepted' as const, qid: newQueueId(now - 40 * 86_400_000 + i), at: now - 40 * 86_400_000, listener: 'default', client: e.clientAddress, user: null, tls: null, helo: 'x', sender: e.mailFrom, rcpts: e.rcptTo, mailbox: e.mailbox, messageId: null, size: 1, subject: null })));
    store.write([{ t: 'accepted', qid: newQueueId(now), at: now, listener: 'default', client: '10.0.0.1', user: null, tls: null, helo: 'x', sender: 'a@b.example', rcpts: ['c@d.example'], mailbox: 'm@d.example', messageId: null, size: 1, subject: null }]);
    const pruned = new Promise<FromWorker>((resolve) => {
      const w = new HistoryWorker(store, { file: cfg.file, retentionMs: 30 * 86_400_000, maxBytes: cfg.maxBytes }, (m) => m.type === 'pruned' && resolve(m));
      w.handle({ type: 'prune' });
    });
    expect(await pruned).toEqual({ type: 'pruned', messages: 5 });
    expect(store.count()).toBe(1);
    store.close();
  });
});

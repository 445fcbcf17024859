/**
 * The delivery history at scale: fills a history file with a million messages (the relay's own write path:
 * HistoryStore.write, one transaction per batch, as the history worker does), then times each kind of lookup
 * the status page and `history search` make. Target: every lookup under 100 ms at 1,000,000 messages.
 *
 *   npx tsx bench/history.ts [--n 1000000] [--batch 2500] [--lookups 20] [--dir DIR] [--keep] [--file FILE]
 *
 * `--file` fills FILE (kept) unless it already holds messages, then times the lookups on it: a second run
 * measures lookups again without a second fill.
 *
 * Prints the fill rate and CPU per message (what the worker spends per accepted message, off the SMTP
 * path), then per lookup kind the median and worst time of `--lookups` runs with different values, warm
 * and right after reopening the file.
 */

import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { HistoryStore } from '../src/history/store.js';
import type { AcceptedRecord, EventRecord, HistoryQuery, HistoryRecord } from '../src/history/types.js';
import { newQueueId } from '../src/spool/queue-id.js';
import { args, cleanup, machine, median, num, table } from './lib.js';

const a = args({ n: 1_000_000 }, ['batch', 'lookups', 'file']);
const batch = num(a.values.batch, 2500);
const lookups = num(a.values.lookups, 20);
const file = typeof a.values.file === 'string' ? path.resolve(a.values.file) : path.join(a.dir, 'history.db');
const reuse = typeof a.values.file === 'string' && existsSync(file);
const DAYS = 30;
const now = Date.now();
const start = now - DAYS * 86_400_000;
const step = (DAYS * 86_400_000) / a.n;

// A fleet: 3000 devices (every 10th authenticates), 5000 recipients, 20 sending mailboxes.
const device = (i: number): number => (i * 7919) % 3000;
const rcpt = (i: number): string => `user${(i * 104729) % 5000}@contoso.example`;
const client = (d: number): string => `10.${(d >> 8) & 255}.${d & 255}.${d % 7}`;

function message(i: number): { rec: AcceptedRecord; events: EventRecord[] } {
  const at = Math.floor(start + i * step);
  const d = device(i);
  const rec: AcceptedRecord = {
    t: 'accepted',
    qid: newQueueId(at),
    at,
    listener: 'default',
    client: client(d),
    user: d % 10 === 0 ? `printer-${d}` : null,
    tls: 'TLSv1.3',
    helo: `printer-${d}.floor${d % 9}.contoso.example`,
    sender: `scanner-${d}@printers.contoso.example`,
    rcpts: i % 20 === 0 ? [rcpt(i), rcpt(i + 1), rcpt(i + 2)] : [rcpt(i)],
    mailbox: `scans${d % 20}@contoso.example`,
    messageId: `<${i}.${d}.scan@printer-${d}.contoso.example>`,
    size: 50_000 + (i % 200_000),
    subject: null,
  };
  const ev = (kind: EventRecord['kind'], state: EventRecord['state'], k: number, extra: Partial<EventRecord> = {}): EventRecord => ({ t: 'event', qid: rec.qid, at: at + 300 * k, kind, state, attempt: k, requestId: `0f1e2d3c-${i}-${k}`, route: 'mime', ...extra });
  const events = i % 100 === 0 ? [ev('dead-lettered', 'dead', 1, { status: 400, code: 'ErrorInvalidRecipients', reason: 'invalid-recipients', detail: 'At least one recipient is not valid.' })] : i % 25 === 0 ? [ev('deferred', null, 1, { status: 429, code: 'ApplicationThrottled', reason: 'throttled' }), ev('delivered', 'delivered', 2, { status: 202 })] : [ev('delivered', 'delivered', 1, { status: 202 })];
  return { rec, events };
}

let store = new HistoryStore(file);
const samples: AcceptedRecord[] = [];
let fillLine = '';
if (reuse) {
  // Samples from the file itself: 200 messages spread over it.
  const n = store.count();
  for (let k = 0; k < 200; k++) {
    const r = store.db.get('SELECT qid FROM msg ORDER BY qid LIMIT 1 OFFSET ?', [Math.floor((k * n) / 200)]) as { qid: string };
    const m = store.search({ qid: r.qid })[0]!;
    samples.push({ t: 'accepted', ...m });
  }
  process.stdout.write(`history: lookups on ${file} (${n} messages, ${(statSync(file).size / 2 ** 20).toFixed(0)} MB); ${machine()}\n`);
} else {
  process.stdout.write(`history: ${a.n} messages over ${DAYS} days into ${file}, batches of ${batch}; ${machine()}\n`);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < a.n; i += batch) {
    const records: HistoryRecord[] = [];
    for (let j = i; j < Math.min(a.n, i + batch); j++) {
      const m = message(j);
      records.push(m.rec, ...m.events);
      if (j % Math.floor(a.n / 200) === 7) samples.push(m.rec);
    }
    store.write(records);
    if ((i / batch) % 40 === 0) process.stdout.write(`  ${i} messages, ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  }
  const fillS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuUsPerMsg = (cpu.user + cpu.system) / a.n;
  fillLine = `, fill ${(a.n / fillS).toFixed(0)} msgs/s at ${cpuUsPerMsg.toFixed(0)} µs CPU per message`;
  process.stdout.write(`filled: ${a.n} messages in ${fillS.toFixed(0)} s (${(a.n / fillS).toFixed(0)} msgs/s), CPU ${cpuUsPerMsg.toFixed(0)} µs per message (accepted + its events), file ${(statSync(file).size / 2 ** 20).toFixed(0)} MB\n`);
}

const pick = (k: number): AcceptedRecord => samples[(k * 37) % samples.length]!;
const HOUR = 3_600_000;
const kinds: [string, (k: number) => HistoryQuery][] = [
  ['queue id', (k) => ({ qid: pick(k).qid })],
  ['Message-ID', (k) => ({ messageId: pick(k).messageId! })],
  ['sender (newest 100)', (k) => ({ sender: pick(k).sender })],
  ['recipient (newest 100)', (k) => ({ recipient: pick(k).rcpts[0]! })],
  ['client address (newest 100)', (k) => ({ client: pick(k).client })],
  ['AUTH user (newest 100)', (k) => ({ user: `printer-${device(k * 10) - (device(k * 10) % 10)}` })],
  ['time range, 1 h (newest 100)', (k) => ({ since: pick(k).at, until: pick(k).at + HOUR })],
  ['recipient + last 7 days', (k) => ({ recipient: pick(k).rcpts[0]!, since: now - 7 * 86_400_000 })],
  ['sender + state dead', (k) => ({ sender: pick(k).sender, state: 'dead' })],
  ['state dead, last 24 h', () => ({ state: 'dead', since: now - 86_400_000 })],
];

function time(label: string): { kind: string; 'median ms': number; 'max ms': number; hits: number }[] {
  return kinds.map(([kind, q]) => {
    const ms: number[] = [];
    let hits = 0;
    for (let k = 0; k < lookups; k++) {
      const s = performance.now();
      hits += store.search(q(k)).length;
      ms.push(performance.now() - s);
    }
    return { kind: `${kind}${label}`, 'median ms': median(ms), 'max ms': Math.max(...ms), hits: Math.round(hits / lookups) };
  });
}

const warm = time('');
store.close();
const o0 = performance.now();
store = new HistoryStore(file, { readOnly: true });
const openMs = performance.now() - o0;
const cold = time(' (reopened)');
const st0 = performance.now();
const story = store.story(pick(3).qid);
const storyMs = performance.now() - st0;
store.close();
process.stdout.write(`\n${table([...warm, ...cold])}\n`);
process.stdout.write(`open ${openMs.toFixed(1)} ms; one message's story ${storyMs.toFixed(2)} ms (${story?.events.length ?? 0} events)\n`);
const worst = Math.max(...[...warm, ...cold].map((r) => r['max ms']));
const medians = Math.max(...[...warm, ...cold].map((r) => r['median ms']));
process.stdout.write(`\nSUMMARY history: ${samples.length ? store.file : ''} worst median ${medians.toFixed(1)} ms, worst single lookup ${worst.toFixed(1)} ms (target < 100 ms: ${worst < 100 ? 'holds' : 'MISSED'})${fillLine}\n`);
cleanup(a.dir, a.keep || typeof a.values.file === 'string');

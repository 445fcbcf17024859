/**
 * The engine with an unknown outcome, in-process: a Sender of the test's own that answers what the test says
 * and keeps a Sent Items of its own, a real spool and journal, a clock the test moves.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { DeliveryEngine } from '../../src/delivery/engine.js';
import type { Sender, SendResult } from '../../src/delivery/senders.js';
import { CLOCK_SKEW_MS } from '../../src/delivery/unknown-outcome.js';
import type { LookupQuery, LookupResult } from '../../src/graph/sent-items.js';
import { createLogger } from '../../src/observability/logger.js';
import type { AttemptOutcome, Scheduled } from '../../src/scheduler/scheduled.js';
import type { Envelope } from '../../src/spool/envelope.js';
import { InflightJournal } from '../../src/spool/journal.js';
import { Spool } from '../../src/spool/spool.js';
import { queueMessage } from '../helpers/spool-message.js';

type Line = Record<string, unknown>;

const INTERVAL = 1000;
const LOOKUPS = 3;
const timeout: SendResult = { verdict: { kind: 'transient', reason: 'network-UND_ERR_HEADERS_TIMEOUT', outcomeUnknown: true }, route: 'mime', code: 'UND_ERR_HEADERS_TIMEOUT' };
const accepted: SendResult = { verdict: { kind: 'delivered' }, route: 'mime', status: 202 };

/** A way out that answers from a list, and whose Sent Items holds what the test puts there. */
class ScriptedSender implements Sender {
  sends = 0;
  answers: SendResult[] = [];
  lookups: LookupQuery[] = [];
  lookupAnswers: LookupResult[] = [];
  keep = true;
  /** Whether the journal showed the attempt in flight when the request "went out". */
  readonly inFlightAtSend: boolean[] = [];
  journal: InflightJournal | null = null;
  async send(env: Envelope, _data: unknown, beforeSubmit?: () => Promise<void>): Promise<SendResult> {
    await beforeSubmit?.(); // as the Graph adapter does, right before the request that submits
    this.inFlightAtSend.push(this.journal?.isOpen(env.id) ?? false);
    this.sends++;
    return this.answers.shift() ?? accepted;
  }
  async findSent(_env: Envelope, q: LookupQuery): Promise<LookupResult> {
    this.lookups.push(q);
    return this.lookupAnswers.shift() ?? { kind: 'not-found', status: 200, requestId: 'r-nf' };
  }
  keepsCopy(): boolean {
    return this.keep;
  }
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup(opts: { lookups?: number } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'unknown-outcome-'));
  dirs.push(dir);
  const spool = new Spool(dir);
  await spool.open();
  const journal = new InflightJournal(dir);
  await journal.restart();
  const cfg = buildConfig({ delivery: { mode: 'capture', unknownOutcome: { lookups: opts.lookups ?? LOOKUPS, interval: `${INTERVAL}ms` }, retry: { schedule: ['5s'] } } }, {}, undefined, { requireMailboxes: false });
  const lines: Line[] = [];
  const log = createLogger('debug', { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  const clock = { t: Date.UTC(2026, 5, 1, 12) };
  const sender = new ScriptedSender();
  sender.journal = journal;
  const engine = new DeliveryEngine({ spool, sender, cfg: cfg.delivery, log, now: () => clock.t, random: () => 0.5, journal });
  const id = await queueMessage(spool, new Date(clock.t).toISOString());
  const msg: Scheduled = { id, mailbox: 'scans@contoso.example', dueAt: clock.t, account: 'default' };
  const attempt = (): Promise<AttemptOutcome> => engine.attempt(msg);
  const events = (): (string | undefined)[] => lines.map((l) => l['event'] as string | undefined);
  return { spool, journal, sender, clock, attempt, id, lines, events };
}

describe('an attempt whose outcome is unknown', () => {
  it('is looked up in Sent Items, not sent again, while the copy is not there yet; found, it is delivered without a second send', async () => {
    const t = await setup();
    t.sender.answers = [timeout];
    expect(await t.attempt()).toEqual({ kind: 'retry', dueAt: t.clock.t + INTERVAL, unreachable: true });
    const env = await t.spool.readEnvelope('queue', t.id);
    expect(env.pendingLookup).toMatchObject({ lookups: 0, reason: 'network-UND_ERR_HEADERS_TIMEOUT', route: 'mime' });
    expect(t.journal.isOpen(t.id)).toBe(false); // the outcome (unknown) is recorded
    // Due early (a restart retries everything at once): no look-up before its time, and nothing sent.
    t.clock.t += 10;
    expect(await t.attempt()).toEqual({ kind: 'retry', dueAt: t.clock.t - 10 + INTERVAL });
    expect(t.sender.lookups).toHaveLength(0);
    t.clock.t += INTERVAL;
    expect(await t.attempt()).toMatchObject({ kind: 'retry' }); // not found yet
    t.sender.lookupAnswers = [{ kind: 'found', status: 200, requestId: 'r-found' }];
    t.clock.t += INTERVAL;
    expect(await t.attempt()).toEqual({ kind: 'done' });
    expect(t.sender.sends).toBe(1);
    expect(t.sender.inFlightAtSend).toEqual([true]);
    expect(t.sender.lookups.map((q) => q.internetMessageId)).toEqual(['<m1@test.example>', '<m1@test.example>']);
    expect(t.sender.lookups[0]!.sentAfterMs).toBe(Date.parse(env.receivedAt) - CLOCK_SKEW_MS);
    expect(await t.spool.exists('queue', t.id)).toBe(false);
    expect(t.lines.find((l) => l['event'] === 'delivered')).toMatchObject({ qid: t.id, resolvedBy: 'sent-items', lookups: 2, requestId: 'r-found' });
    expect(t.events()).toContain('outcome-unknown');
  });

  it('not found by the last look-up, it is sent again, once', async () => {
    const t = await setup();
    t.sender.answers = [timeout];
    await t.attempt();
    for (let i = 1; i <= LOOKUPS; i++) {
      t.clock.t += INTERVAL;
      const out = await t.attempt();
      expect(out.kind).toBe(i < LOOKUPS ? 'retry' : 'done');
    }
    expect(t.sender.sends).toBe(2);
    expect(t.sender.inFlightAtSend).toEqual([true, true]);
    expect(t.journal.isOpen(t.id)).toBe(false); // delivered: the attempt's end is in the journal
    expect(t.sender.lookups).toHaveLength(LOOKUPS);
    expect(t.lines.find((l) => l['event'] === 'lookup-not-found')).toMatchObject({ qid: t.id, lookups: LOOKUPS, waitedMs: LOOKUPS * INTERVAL });
    expect(t.events()).not.toContain('possible-duplicate');
  });

  it('without a copy to look for (JSON sendMail, saveToSentItems false) it is retried on the schedule, at-least-once, with a warning', async () => {
    const t = await setup();
    t.sender.answers = [{ ...timeout, route: 'json' }];
    expect(await t.attempt()).toMatchObject({ kind: 'retry', dueAt: t.clock.t + 5000 });
    const env = await t.spool.readEnvelope('queue', t.id);
    expect(env.pendingLookup).toBeUndefined();
    expect(env.possibleDuplicate).toBe(true);
    expect(t.lines.find((l) => l['event'] === 'possible-duplicate')).toMatchObject({ qid: t.id, why: 'no-sent-items-copy', level: 'warn' });
  });

  it('with the look-up refused (403, no role) it goes again then, and says so', async () => {
    const t = await setup();
    t.sender.answers = [timeout];
    await t.attempt();
    t.sender.lookupAnswers = [{ kind: 'unavailable', why: 'forbidden', status: 403, code: 'ErrorAccessDenied' }];
    t.clock.t += INTERVAL;
    expect(await t.attempt()).toEqual({ kind: 'done' });
    expect(t.sender.sends).toBe(2);
    expect(t.lines.find((l) => l['event'] === 'possible-duplicate')).toMatchObject({ qid: t.id, why: 'forbidden', status: 403 });
  });

  it('failed look-ups are retried like failed attempts, and past twice the look-ups the message goes again', async () => {
    const t = await setup({ lookups: 1 });
    t.sender.answers = [timeout];
    await t.attempt();
    const failed: LookupResult = { kind: 'failed', verdict: { kind: 'transient', reason: 'http-500' }, status: 500 };
    t.sender.lookupAnswers = [failed, failed];
    t.clock.t += INTERVAL;
    expect(await t.attempt()).toMatchObject({ kind: 'retry', dueAt: t.clock.t + 5000 });
    expect(t.lines.find((l) => l['event'] === 'deferred' && l['route'] === 'lookup')).toMatchObject({ reason: 'http-500' });
    t.clock.t += 5000;
    expect(await t.attempt()).toEqual({ kind: 'done' });
    expect(t.lines.find((l) => l['event'] === 'possible-duplicate')).toMatchObject({ why: 'lookup-failing' });
    expect(t.sender.sends).toBe(2);
  });

  it('after a crash (route unknown) with sentItems discard, a message not found goes again as a possible duplicate', async () => {
    const t = await setup({ lookups: 1 });
    const env = await t.spool.readEnvelope('queue', t.id);
    env.pendingLookup = { since: new Date(t.clock.t - 2 * INTERVAL).toISOString(), lookups: 0, reason: 'crash' };
    await t.spool.updateEnvelope('queue', env);
    t.sender.keep = false;
    expect(await t.attempt()).toEqual({ kind: 'done' });
    expect(t.sender.lookups).toHaveLength(1);
    expect(t.lines.find((l) => l['event'] === 'possible-duplicate')).toMatchObject({ why: 'no-sent-items-copy' });
  });

  it('sends nothing when the start cannot be journaled', async () => {
    const t = await setup();
    await t.journal.close();
    expect(await t.attempt()).toMatchObject({ kind: 'retry' });
    expect(t.sender.sends).toBe(0);
    expect(t.events()).toContain('journal-failed');
  });

  it('with unknownOutcome.lookups 0 there is no look-up: retried on the schedule, at-least-once', async () => {
    const t = await setup({ lookups: 0 });
    t.sender.answers = [timeout];
    await t.attempt();
    expect(t.lines.find((l) => l['event'] === 'possible-duplicate')).toMatchObject({ why: 'lookups-off' });
    expect(t.sender.lookups).toHaveLength(0);
  });
});


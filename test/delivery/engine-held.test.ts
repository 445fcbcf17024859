/**
 * The engine when Graph or Entra ID cannot be reached: such a failure is not one of the message's attempts
 * (its attempts and next attempt time stay), its last error is recorded, and the scheduler is told to hold it.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { DeliveryEngine } from '../../src/delivery/engine.js';
import { notReached } from '../../src/graph/classify.js';
import type { Sender, SendResult } from '../../src/delivery/senders.js';
import { createLogger } from '../../src/observability/logger.js';
import type { Scheduled } from '../../src/scheduler/scheduled.js';
import type { Envelope } from '../../src/spool/envelope.js';
import { Spool } from '../../src/spool/spool.js';
import { queueMessage } from '../helpers/spool-message.js';

type Line = Record<string, unknown>;

const refused: SendResult = { verdict: { kind: 'transient', reason: 'network-ECONNREFUSED' }, route: 'mime', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' };
const noToken: SendResult = { verdict: { kind: 'transient', reason: 'token-unavailable' }, route: 'mime', message: 'no token' };
const reset: SendResult = { verdict: { kind: 'transient', reason: 'network-ECONNRESET', outcomeUnknown: true }, route: 'mime', code: 'ECONNRESET' };
const http500: SendResult = { verdict: { kind: 'transient', reason: 'http-500' }, route: 'mime', status: 500 };

class ScriptedSender implements Sender {
  answers: SendResult[] = [];
  async send(): Promise<SendResult> {
    return this.answers.shift() ?? { verdict: { kind: 'delivered' }, route: 'mime', status: 202 };
  }
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup(delivery: Record<string, unknown> = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'engine-held-'));
  dirs.push(dir);
  const spool = new Spool(dir);
  await spool.open();
  const cfg = buildConfig({ delivery: { mode: 'capture', retry: { schedule: ['30s', '65s'] }, ...delivery } }, {}, undefined, { requireMailboxes: false });
  const lines: Line[] = [];
  const log = createLogger('debug', { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  const clock = { t: Date.UTC(2026, 5, 1, 12) };
  const sender = new ScriptedSender();
  const engine = new DeliveryEngine({ spool, sender, cfg: cfg.delivery, log, now: () => clock.t, random: () => 0.5 });
  const at = new Date(clock.t).toISOString();
  const id = await queueMessage(spool, at);
  const msg: Scheduled = { id, mailbox: 'scans@contoso.example', dueAt: clock.t, account: 'default' };
  return { spool, sender, clock, id, lines, at, attempt: () => engine.attempt(msg) };
}

describe('a failure that is not the message\'s own', () => {
  it('tells which verdicts those are: nothing reached Graph', () => {
    expect(notReached(refused.verdict)).toBe(true);
    expect(notReached(noToken.verdict)).toBe(true);
    expect(notReached(reset.verdict)).toBe(false); // the body was sent: an unknown outcome
    expect(notReached(http500.verdict)).toBe(false);
  });

  it('does not advance attempts or the next attempt time, records the last error, and asks the scheduler to hold the message', async () => {
    const t = await setup();
    t.sender.answers = [refused, noToken, refused];
    for (let i = 0; i < 3; i++) {
      t.clock.t += 1000;
      expect(await t.attempt()).toEqual({ kind: 'retry', dueAt: t.clock.t + 30_000, unreachable: true, hold: true });
    }
    const env = await t.spool.readEnvelope('queue', t.id);
    expect(env.attempts).toBe(0);
    expect(env.nextAttemptAt).toBe(t.at);
    expect(env.lastError).toMatchObject({ kind: 'transient', reason: 'network-ECONNREFUSED' });
    const deferred = t.lines.filter((l) => l['event'] === 'deferred');
    expect(deferred.map((l) => [l['attempt'], l['held']])).toEqual([[0, true], [0, true], [0, true]]);
    // Graph answers: the first real attempt is attempt 1.
    t.sender.answers = [http500];
    expect(await t.attempt()).toEqual({ kind: 'retry', dueAt: t.clock.t + 30_000, unreachable: false });
    const after = await t.spool.readEnvelope('queue', t.id);
    expect(after.attempts).toBe(1);
    expect(after.nextAttemptAt).toBe(new Date(t.clock.t + 30_000).toISOString());
    expect(t.lines.filter((l) => l['event'] === 'deferred').at(-1)).toMatchObject({ attempt: 1, retryInMs: 30_000 });
    expect(await t.attempt()).toEqual({ kind: 'done' });
  });

  it('still expires a message held past the maximum queue lifetime', async () => {
    const t = await setup({ retry: { schedule: ['30s'], maxQueueLifetime: '1m' } });
    t.sender.answers = [refused];
    t.clock.t += 45_000;
    expect(await t.attempt()).toEqual({ kind: 'done' });
    expect(t.lines.some((l) => l['event'] === 'dead-lettered' && l['reason'] === 'expired')).toBe(true);
  });
});

/**
 * The active set: at most `limit` queued messages in the scheduler, the rest read in from queue/ as it
 * drains; nothing lost, nothing sent twice, whatever the order of scan, acceptance, delivery and deletion.
 */

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ActiveSet } from '../../src/app/active-set.js';
import { handleControl } from '../../src/app/control.js';
import { createLogger } from '../../src/observability/logger.js';
import { RelayMetrics } from '../../src/observability/metrics.js';
import type { AttemptOutcome, Scheduled } from '../../src/scheduler/scheduled.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { Spool } from '../../src/spool/spool.js';
import { prefillQueue } from '../helpers/prefill.js';

const dirs: string[] = [];
const spools: Spool[] = [];
afterEach(async () => {
  await Promise.all(spools.splice(0).map((s) => s.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A spool with `n` messages queued, a scheduler whose attempts deliver (remove the file), and the active set between them. */
async function setup(n: number, limit: number, opts: { holdMs?: number } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'active-set-'));
  dirs.push(dir);
  const ids = prefillQueue({ spoolDir: dir, n, mailbox: (i) => `mb${i % 5}@contoso.example` });
  const spool = new Spool(dir);
  spools.push(spool);
  await spool.openForAccepting();
  const metrics = new RelayMetrics({ processMetrics: false });
  const attempts = new Map<string, number>();
  const started = new Set<string>();
  let most = 0;
  const gate = { open: true, waiters: [] as (() => void)[] };
  let active: ActiveSet | undefined;
  const scheduler = new Scheduler(
    { perMailboxConcurrency: 4, globalConcurrency: 20, messagesPerMinute: 0, throttleBackoffBaseMs: 1000, throttleBackoffMaxMs: 1000, onForget: (id) => active?.forgotten(id) },
    async (m: Scheduled): Promise<AttemptOutcome> => {
      most = Math.max(most, scheduler.size());
      started.add(m.id);
      while (!gate.open) await new Promise<void>((r) => gate.waiters.push(r));
      attempts.set(m.id, (attempts.get(m.id) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, opts.holdMs ?? 0));
      try {
        await spool.remove('queue', m.id);
      } catch {
        metrics.deliveryEvents.vanished(m.id);
        return { kind: 'done' };
      }
      metrics.queue.remove(m.id);
      return { kind: 'done' };
    },
  );
  active = new ActiveSet({ spool, scheduler, metrics, log: createLogger('silent'), now: Date.now, limit });
  const set = active;
  const release = (): void => {
    gate.open = true;
    gate.waiters.splice(0).forEach((w) => w());
  };
  return { dir, ids, spool, scheduler, active: set, metrics, attempts, started, most: () => most, gate, release };
}

async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('the active set', () => {
  it('keeps at most the limit in the scheduler, reads the rest in as it drains, and sends each message once', async () => {
    const t = await setup(1500, 100);
    const report = await t.active.start();
    expect(report.queued).toBe(1500);
    expect(t.metrics.queue.size).toBe(1500);
    await until(() => t.attempts.size === 1500 && t.scheduler.size() === 0);
    await t.active.drained();
    expect(t.most()).toBeLessThanOrEqual(100);
    expect([...t.attempts.values()].every((n) => n === 1)).toBe(true);
    expect(t.metrics.queue.size).toBe(0);
    expect(await t.spool.ids('queue')).toEqual([]);
  });

  it('leaves a message accepted while the set is full on disk, and loads it when there is room', async () => {
    const t = await setup(300, 100);
    t.gate.open = false; // nothing finishes yet
    await t.active.start();
    await until(() => t.scheduler.size() === 100);
    // Acceptance while full: the message stays on disk, counted.
    const [late] = prefillQueue({ spoolDir: t.dir, n: 1, mailbox: () => 'late@contoso.example' });
    expect(t.active.offer({ id: late!, mailbox: 'late@contoso.example' }, Date.now())).toBe(false);
    t.metrics.queue.addOnDisk(1, Date.now());
    expect(t.scheduler.has(late!)).toBe(false);
    expect(t.metrics.queue.size).toBe(301);
    t.release();
    await until(() => t.attempts.size === 301 && t.scheduler.size() === 0);
    await t.active.drained();
    expect(t.attempts.get(late!)).toBe(1);
    expect(t.metrics.queue.size).toBe(0);
  });

  it('does not load again a message whose attempt ended while the scan read its envelope', async () => {
    const t = await setup(40, 1000);
    // The scan reads every envelope; while it reads this one, the message is "delivered" by someone else.
    const victim = t.ids[7]!;
    const read = t.spool.readEnvelope.bind(t.spool);
    t.spool.readEnvelope = async (state, id) => {
      const env = await read(state, id);
      if (id === victim) {
        await t.spool.remove('queue', id);
        t.active.forgotten(id);
      }
      return env;
    };
    await t.active.start();
    await until(() => t.attempts.size === 39 && t.scheduler.size() === 0);
    await t.active.drained();
    expect(t.attempts.has(victim)).toBe(false);
    expect([...t.attempts.values()].every((n) => n === 1)).toBe(true);
  });

  it('lets a queue tool delete a message that waits on disk: never sent, counted out once', async () => {
    const t = await setup(250, 100);
    t.gate.open = false;
    await t.active.start();
    await until(() => t.scheduler.size() === 100);
    const onDisk = t.ids.find((id) => !t.scheduler.has(id))!;
    const inSet = t.ids.find((id) => t.scheduler.has(id) && !t.started.has(id))!;
    const deps = { spool: t.spool, scheduler: t.scheduler, active: t.active, metrics: t.metrics, log: createLogger('silent'), now: Date.now };
    expect(await handleControl(deps, { op: 'delete', ids: [onDisk, inSet] })).toMatchObject({ count: 2 });
    expect(existsSync(t.spool.messagePath('queue', onDisk))).toBe(false);
    expect(t.metrics.queue.size).toBe(248);
    t.release();
    await until(() => t.attempts.size === 248 && t.scheduler.size() === 0);
    await t.active.drained();
    expect(t.attempts.has(onDisk)).toBe(false);
    expect(t.attempts.has(inSet)).toBe(false);
    expect(t.metrics.queue.size).toBe(0);
  });

  it('repairs what a crash left only for the previous process\'s messages, while acceptance goes on', async () => {
    const t = await setup(10, 100);
    // A state file whose message is gone (delivered just before a crash): removed by the start's repair.
    const gone = t.ids[0]!;
    await t.spool.remove('queue', gone).catch(() => undefined);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(t.spool.statePath('queue', gone), '{}');
    const report = await t.active.start();
    expect(report).toMatchObject({ queued: 9, removedOrphans: 1 });
    await until(() => t.attempts.size === 9 && t.scheduler.size() === 0);
  });
});

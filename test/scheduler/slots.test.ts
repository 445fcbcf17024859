/** The scheduler with fleet slots (src/scheduler/slots.ts): it asks before each attempt, waits when refused, releases after, and tells pauses. */

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AttemptOutcome } from '../../src/scheduler/scheduled.js';
import { Scheduler, type SchedulerOptions } from '../../src/scheduler/scheduler.js';
import type { MailboxSlots, SlotAnswer } from '../../src/scheduler/slots.js';

const base: SchedulerOptions = { perMailboxConcurrency: 4, globalConcurrency: 100, messagesPerMinute: 0, throttleBackoffBaseMs: 1000, throttleBackoffMaxMs: 60_000, random: () => 0.5 };

/** Slots of a fleet in memory: `capacity` per mailbox for this replica, the rest taken by "other replicas". */
class FakeFleet implements MailboxSlots {
  held = new Map<string, number>();
  asked = 0;
  refused = 0;
  readonly log: string[] = [];
  private readonly listeners: ((a?: string, m?: string) => void)[] = [];
  constructor(public capacity: number) {}
  async acquire(account: string, mailbox: string): Promise<SlotAnswer> {
    this.asked++;
    const k = `${account}/${mailbox}`;
    const n = this.held.get(k) ?? 0;
    if (n >= this.capacity) {
      this.refused++;
      return { granted: false, retryAt: Date.now() + 60_000 };
    }
    this.held.set(k, n + 1);
    let done = false;
    return {
      granted: true,
      release: () => {
        if (done) return;
        done = true;
        this.log.push(`release ${k}`);
        this.held.set(k, this.held.get(k)! - 1);
      },
    };
  }
  paused(account: string, mailbox: string, until: number): void {
    this.log.push(`pause ${account}/${mailbox} ${until - Date.now()}`);
  }
  onFreed(listener: (a?: string, m?: string) => void): void {
    this.listeners.push(listener);
  }
  /** Another replica let a slot go. */
  free(account: string, mailbox: string): void {
    this.capacity++;
    for (const l of this.listeners) l(account, mailbox);
  }
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('scheduler with fleet slots', () => {
  it('starts only what the fleet grants, and starts a waiting message when a slot frees elsewhere', async () => {
    const fleet = new FakeFleet(1);
    let inFlight = 0;
    let maxInFlight = 0;
    const started: string[] = [];
    const s = new Scheduler({ ...base, slots: fleet }, async (m, release): Promise<AttemptOutcome> => {
      started.push(m.id);
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await new Promise((r) => setTimeout(r, 100));
      inFlight--;
      release();
      return { kind: 'done' };
    });
    for (let i = 0; i < 3; i++) s.add(`m${i}`, 'A@contoso.example', Date.now());
    await vi.advanceTimersByTimeAsync(1);
    expect(started).toEqual(['m0']);
    expect(fleet.refused).toBeGreaterThan(0);
    // Another replica frees a slot: the waiting mailbox starts at once, not after its 60 s retry.
    fleet.free('default', 'a@contoso.example');
    await vi.advanceTimersByTimeAsync(1);
    expect(started).toEqual(['m0', 'm1']);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(started).toEqual(['m0', 'm1', 'm2']);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(s.size()).toBe(0);
    expect(maxInFlight).toBe(2);
    expect(fleet.held.get('default/a@contoso.example')).toBe(0);
  });

  it('tells the fleet about a throttle pause before it gives the slot back', async () => {
    const fleet = new FakeFleet(4);
    let n = 0;
    const s = new Scheduler({ ...base, slots: fleet }, async (): Promise<AttemptOutcome> => (++n === 1 ? { kind: 'throttled', retryAfterMs: 5_000 } : { kind: 'done' }));
    s.add('m0', 'a@contoso.example', Date.now());
    await vi.advanceTimersByTimeAsync(1);
    expect(fleet.log).toEqual(['pause default/a@contoso.example 5000', 'release default/a@contoso.example']);
    await vi.advanceTimersByTimeAsync(6_000);
    expect(s.size()).toBe(0);
    expect(fleet.asked).toBe(2);
  });

  it('waits for an attempt whose slot is still being asked for when it stops', async () => {
    let grant!: (a: SlotAnswer) => void;
    const slow: MailboxSlots = { acquire: () => new Promise((r) => (grant = r)), paused: () => undefined, onFreed: () => undefined };
    const runs: string[] = [];
    const s = new Scheduler({ ...base, slots: slow }, async (m) => {
      runs.push(m.id);
      return { kind: 'done' };
    });
    s.add('m0', 'a@contoso.example', Date.now());
    await vi.advanceTimersByTimeAsync(1);
    let stopped = false;
    const stopping = s.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(1);
    expect(stopped).toBe(false);
    let released = false;
    grant({ granted: true, release: () => (released = true) });
    await stopping;
    // Granted after the stop: given back at once, the message left for the next start.
    expect(runs).toEqual([]);
    expect(released).toBe(true);
    expect(s.size()).toBe(1);
  });
});

/** The scheduler: in-flight limits per mailbox and overall, throttle pauses, slow start, pacing. */

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AttemptOutcome, Scheduled } from '../../src/scheduler/scheduled.js';
import { Scheduler, type SchedulerOptions } from '../../src/scheduler/scheduler.js';

const base: SchedulerOptions = { perMailboxConcurrency: 4, globalConcurrency: 100, messagesPerMinute: 0, throttleBackoffBaseMs: 1000, throttleBackoffMaxMs: 60_000, random: () => 0.5 };

/** A runner whose attempts finish when the test says so, recording starts and concurrency. */
function harness(opts: Partial<SchedulerOptions> = {}, decide: (m: Scheduled, n: number) => AttemptOutcome = () => ({ kind: 'done' }), holdMs = 100) {
  const inFlight = new Map<string, number>();
  const maxInFlight = new Map<string, number>();
  let total = 0;
  let maxTotal = 0;
  const starts: { id: string; mailbox: string; at: number }[] = [];
  const attempts = new Map<string, number>();
  const s = new Scheduler({ ...base, ...opts }, async (m) => {
    const n = (attempts.get(m.id) ?? 0) + 1;
    attempts.set(m.id, n);
    starts.push({ id: m.id, mailbox: m.mailbox, at: Date.now() });
    inFlight.set(m.mailbox, (inFlight.get(m.mailbox) ?? 0) + 1);
    maxInFlight.set(m.mailbox, Math.max(maxInFlight.get(m.mailbox) ?? 0, inFlight.get(m.mailbox)!));
    maxTotal = Math.max(maxTotal, ++total);
    await new Promise((r) => setTimeout(r, holdMs));
    inFlight.set(m.mailbox, inFlight.get(m.mailbox)! - 1);
    total--;
    return decide(m, n);
  });
  return { s, starts, maxInFlight, maxTotal: () => maxTotal, attempts };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('scheduler', () => {
  it('never has more than the per-mailbox limit in flight, and drains at that rate', async () => {
    const h = harness();
    for (let i = 0; i < 40; i++) h.s.add(`a${String(i).padStart(3, '0')}`, 'A@contoso.example', Date.now());
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(999);
    expect(h.starts).toHaveLength(40);
    expect(h.maxInFlight.get('a@contoso.example')).toBe(4);
    expect(h.starts[39]!.at - h.starts[0]!.at).toBe(900);
  });

  it('respects the global limit across mailboxes and shares it round-robin', async () => {
    const h = harness({ globalConcurrency: 6 });
    for (const mb of ['a', 'b', 'c']) for (let i = 0; i < 10; i++) h.s.add(`${mb}${i}`, `${mb}@x.example`, Date.now());
    await vi.advanceTimersByTimeAsync(0);
    expect(h.starts.map((s) => s.mailbox[0]).sort().join('')).toBe('aabbcc');
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.maxTotal()).toBe(6);
    expect(h.starts).toHaveLength(30);
  });

  it('pauses the whole mailbox on a throttle until Retry-After, without holding back other mailboxes', async () => {
    const h = harness({}, (m, n) => (m.id === 'a0' && n === 1 ? { kind: 'throttled', retryAfterMs: 5000 } : { kind: 'done' }));
    h.s.add('a0', 'a@x.example', Date.now());
    await vi.advanceTimersByTimeAsync(0);
    for (let i = 1; i < 6; i++) h.s.add(`a${i}`, 'a@x.example', Date.now());
    for (let i = 0; i < 8; i++) h.s.add(`b${i}`, 'b@x.example', Date.now());
    const t0 = Date.now();
    await vi.advanceTimersByTimeAsync(100); // a0 answers 429 at t0+100
    await vi.advanceTimersByTimeAsync(1000);
    const aStartsDuringPause = h.starts.filter((s) => s.mailbox === 'a@x.example' && s.at > t0 + 100 && s.at < t0 + 5100);
    // Three more a-messages started alongside a0 before the 429 came back; none after it until the pause ends.
    expect(aStartsDuringPause).toHaveLength(0);
    expect(h.starts.filter((s) => s.mailbox === 'b@x.example')).toHaveLength(8);
    await vi.advanceTimersByTimeAsync(5000);
    const after = h.starts.filter((s) => s.mailbox === 'a@x.example' && s.at >= t0 + 5100);
    expect(after.length).toBeGreaterThan(0);
    expect(after[0]!.at).toBe(t0 + 5100);
    // Slow start: one at a time right after the pause, then the window grows back.
    expect(after.filter((s) => s.at === t0 + 5100)).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(5000);
    expect(h.s.size()).toBe(0);
    expect(h.attempts.get('a0')).toBe(2);
  });

  it('backs off exponentially when a throttle has no Retry-After', async () => {
    let throttles = 0;
    const h = harness({ perMailboxConcurrency: 1 }, () => (throttles++ < 3 ? { kind: 'throttled', retryAfterMs: null } : { kind: 'done' }), 0);
    h.s.add('m', 'a@x.example', Date.now());
    await vi.advanceTimersByTimeAsync(20_000);
    const gaps = h.starts.slice(1).map((s, i) => s.at - h.starts[i]!.at);
    // Each pause is counted from the 429; the attempt itself takes a tick of the fake clock.
    expect(gaps.map((g) => Math.round(g / 100) * 100)).toEqual([1000, 2000, 4000]);
  });

  it('paces starts per mailbox when messagesPerMinute is set', async () => {
    const h = harness({ messagesPerMinute: 30 }, undefined, 10);
    for (let i = 0; i < 4; i++) h.s.add(`m${i}`, 'a@x.example', Date.now());
    h.s.add('other', 'b@x.example', Date.now());
    await vi.advanceTimersByTimeAsync(10_000);
    const a = h.starts.filter((s) => s.mailbox === 'a@x.example').map((s) => s.at - h.starts[0]!.at);
    expect(a).toEqual([0, 2000, 4000, 6000]);
    expect(h.starts.find((s) => s.mailbox === 'b@x.example')!.at).toBe(h.starts[0]!.at);
  });

  it('retries at the due time a deferral asks for, and retry-now makes it due at once', async () => {
    const h = harness({}, (_m, n) => (n === 1 ? { kind: 'retry', dueAt: Date.now() + 60_000 } : { kind: 'done' }), 0);
    h.s.add('m', 'a@x.example', Date.now());
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.attempts.get('m')).toBe(1);
    expect(h.s.retryNow((m) => m.id === 'm')).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.attempts.get('m')).toBe(2);
    expect(h.s.size()).toBe(0);
  });

  it('stop() waits for attempts in flight and starts no new ones', async () => {
    const h = harness();
    for (let i = 0; i < 8; i++) h.s.add(`m${i}`, 'a@x.example', Date.now());
    await vi.advanceTimersByTimeAsync(0);
    const stopped = h.s.stop();
    let done = false;
    void stopped.then(() => (done = true));
    await vi.advanceTimersByTimeAsync(50);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(100);
    expect(done).toBe(true);
    expect(h.starts).toHaveLength(4);
  });
});

describe('slot release', () => {
  it('frees the mailbox slot when Graph has answered, while the attempt still records its outcome', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const starts: number[] = [];
    let maxRunning = 0;
    let running = 0;
    const s = new Scheduler({ ...base, perMailboxConcurrency: 1 }, async (_m, release) => {
      starts.push(Date.now());
      maxRunning = Math.max(maxRunning, ++running);
      await new Promise((r) => setTimeout(r, 100)); // Graph
      release();
      await new Promise((r) => setTimeout(r, 50)); // spool bookkeeping
      running--;
      return { kind: 'done' };
    });
    for (let i = 0; i < 3; i++) s.add(`m${i}`, 'a@x.example', Date.now());
    await vi.advanceTimersByTimeAsync(1000);
    expect(starts.map((t) => t - starts[0]!)).toEqual([0, 100, 200]);
    expect(maxRunning).toBe(2);
    // stop() still waits for the bookkeeping of released attempts.
    s.add('m3', 'a@x.example', Date.now());
    await vi.advanceTimersByTimeAsync(120);
    let stopped = false;
    void s.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(10);
    expect(stopped).toBe(false);
    await vi.advanceTimersByTimeAsync(50);
    expect(stopped).toBe(true);
  });
  it('retries a message whose attempt was released before it finished, even when the mailbox got new mail meanwhile', async () => {
    // The runner frees the Graph slot as soon as Graph answers and only then updates the spool; in that gap
    // the mailbox has nothing in flight or waiting. A new message for it must not lose the pending retry.
    const retried: string[] = [];
    const starts: string[] = [];
    let finishFirst!: () => void;
    const s = new Scheduler(base, async (m, release) => {
      starts.push(m.id);
      if (m.id === 'first' && !retried.includes('first')) {
        retried.push('first');
        release();
        await new Promise<void>((r) => (finishFirst = r));
        return { kind: 'retry', dueAt: Date.now() + 100 };
      }
      return { kind: 'done' };
    });
    s.add('first', 'a@x.example', Date.now());
    await vi.advanceTimersByTimeAsync(0);
    s.add('second', 'a@x.example', Date.now() + 50);
    await vi.advanceTimersByTimeAsync(0);
    finishFirst();
    await vi.advanceTimersByTimeAsync(200);
    expect(starts).toEqual(['first', 'second', 'first']);
    expect(s.size()).toBe(0);
  });
});

describe('outage breaker', () => {
  it('stops starting attempts after 5 unreachable in a row, probes one at a time, and reopens on an answer', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    let graphUp = false;
    const events: number[] = [];
    const h = harness({ onOutage: (ms) => events.push(ms), outageProbeIntervalMs: 60_000 }, () => (graphUp ? { kind: 'done' } : { kind: 'retry', dueAt: Date.now() + 3_600_000, unreachable: true }), 10);
    for (let i = 0; i < 40; i++) h.s.add(`m${String(i).padStart(2, '0')}`, `mb${i % 8}@x.example`, Date.now());
    await vi.advanceTimersByTimeAsync(15);
    // The first wave was under way (32 started, 4 more as the first four failures freed slots); the 5th
    // failure opened the breaker, and the other failures of that wave did not escalate it.
    expect(events).toEqual([1000]);
    expect(h.starts.length).toBe(36);
    const startedBeforePause = h.starts.length;
    await vi.advanceTimersByTimeAsync(900);
    expect(h.starts.length).toBe(startedBeforePause);
    // After the pause: exactly one probe; it fails, so the next pause doubles.
    await vi.advanceTimersByTimeAsync(200);
    expect(h.starts.length).toBe(startedBeforePause + 1);
    expect(events.at(-1)).toBe(2000);
    graphUp = true;
    await vi.advanceTimersByTimeAsync(2100);
    expect(events.at(-1)).toBe(0);
    await vi.advanceTimersByTimeAsync(1000);
    // Everything not already failed went out once Graph answered; the 37 failures wait for their retry time.
    expect(h.starts.length).toBe(40);
    expect(h.s.size()).toBe(37);
  });
});

describe('messages held by an outage', () => {
  const down = (): AttemptOutcome => ({ kind: 'retry', dueAt: Date.now() + 30_000, unreachable: true, hold: true });

  it('after a restart while Graph is down, no message waits out a timer of its own: the first answer releases them all', async () => {
    let graphUp = false;
    const events: number[] = [];
    const h = harness({ onOutage: (ms) => events.push(ms), globalConcurrency: 16, outageProbeIntervalMs: 2000 }, () => (graphUp ? { kind: 'done' } : down()), 10);
    // A restart: the whole queue due at once, before the relay knows Graph is down.
    for (let i = 0; i < 200; i++) h.s.add(`m${String(i).padStart(3, '0')}`, `mb${i % 10}@x.example`, Date.now());
    await vi.advanceTimersByTimeAsync(30);
    expect(events).toEqual([1000]);
    const firstWave = h.starts.length;
    expect(firstWave).toBeGreaterThanOrEqual(16);
    // Those that failed (before or after the breaker opened) are held, none of them with a 30 s timer.
    expect(h.s.heldCount()).toBe(firstWave);
    // Graph stays down for 20 s: one probe at a time, pauses 1 s, 2 s, 2 s … (the cap), never longer.
    await vi.advanceTimersByTimeAsync(20_000);
    expect(events.slice(0, 4)).toEqual([1000, 2000, 2000, 2000]);
    expect(Math.max(...events)).toBe(2000);
    const probes = h.starts.length - firstWave;
    expect(probes).toBeGreaterThanOrEqual(9);
    expect(probes).toBeLessThanOrEqual(12);
    // Graph returns: the next probe (at most 2 s away) answers, and everything goes out at once.
    graphUp = true;
    const back = Date.now();
    await vi.advanceTimersByTimeAsync(2000 + 500);
    expect(events.at(-1)).toBe(0);
    expect(h.s.size()).toBe(0);
    expect(h.s.heldCount()).toBe(0);
    const last = Math.max(...h.starts.map((x) => x.at));
    expect(last - back).toBeLessThanOrEqual(2000 + 10 * 20);
  });

  it('holds the failures of the first wave, set before the breaker opened, instead of leaving them 30 s timers', async () => {
    let graphUp = false;
    const h = harness({ globalConcurrency: 1 }, () => (graphUp ? { kind: 'done' } : down()), 10);
    for (let i = 0; i < 8; i++) h.s.add(`m${i}`, 'a@x.example', Date.now());
    // One at a time: four fail with the breaker closed (each given a 30 s timer), the fifth opens it.
    await vi.advanceTimersByTimeAsync(55);
    expect(h.starts).toHaveLength(5);
    graphUp = true;
    await vi.advanceTimersByTimeAsync(1000 + 200);
    // The probe at 1 s answered: m0..m3 did not wait for their 30 s.
    expect(h.s.size()).toBe(0);
    expect(h.attempts.get('m0')).toBe(2);
  });

  it('an isolated unreachable failure while others get answers keeps its normal timer: no tight loop', async () => {
    const h = harness({}, (m) => (m.id === 'lonely' ? down() : { kind: 'done' }), 10);
    h.s.add('lonely', 'a@x.example', Date.now());
    for (let i = 0; i < 50; i++) h.s.add(`ok${i}`, `b${i % 5}@x.example`, Date.now());
    await vi.advanceTimersByTimeAsync(29_000);
    expect(h.attempts.get('lonely')).toBe(1);
    expect(h.s.heldCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(2000);
    expect(h.attempts.get('lonely')).toBe(2);
    // Still isolated: the breaker never opened, so it keeps waiting 30 s at a time.
    await vi.advanceTimersByTimeAsync(10_000);
    expect(h.attempts.get('lonely')).toBe(2);
  });

  it('a retry that is not held (an unknown outcome waiting for its Sent Items look-up) keeps its time when the breaker closes', async () => {
    let graphUp = false;
    const h = harness({}, (m) => {
      if (m.id === 'unknown' && !graphUp) return { kind: 'retry', dueAt: Date.now() + 60_000, unreachable: true };
      return graphUp ? { kind: 'done' } : down();
    }, 10);
    h.s.add('unknown', 'a@x.example', Date.now());
    for (let i = 0; i < 6; i++) h.s.add(`m${i}`, 'b@x.example', Date.now());
    await vi.advanceTimersByTimeAsync(100);
    graphUp = true;
    await vi.advanceTimersByTimeAsync(5000);
    expect(h.s.size()).toBe(1);
    expect(h.attempts.get('unknown')).toBe(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(h.s.size()).toBe(0);
  });

  it('lifts the backoff pauses that began during the outage when it ends, not a Retry-After', async () => {
    let graphUp = false;
    const h = harness({ perMailboxConcurrency: 1, throttleBackoffBaseMs: 60_000, throttleBackoffMaxMs: 60_000 }, (m, n) => {
      if (m.mailbox === 'slow@x.example' && n === 1) return { kind: 'throttled', retryAfterMs: null };
      if (m.mailbox === 'told@x.example' && n === 1) return { kind: 'throttled', retryAfterMs: 60_000 };
      return graphUp ? { kind: 'done' } : down();
    }, 10);
    // Graph degrading: two mailboxes throttled (503s, one without Retry-After), then nothing answers at all.
    h.s.add('s0', 'slow@x.example', Date.now());
    h.s.add('t0', 'told@x.example', Date.now());
    await vi.advanceTimersByTimeAsync(15);
    for (let i = 0; i < 6; i++) h.s.add(`d${i}`, 'down@x.example', Date.now());
    await vi.advanceTimersByTimeAsync(200); // one at a time, five failures: the breaker opens
    graphUp = true;
    await vi.advanceTimersByTimeAsync(3000);
    expect(h.attempts.get('s0')).toBe(2); // backoff lifted with the outage
    expect(h.attempts.get('t0')).toBe(1); // Graph's own Retry-After stands
    expect(h.s.size()).toBe(1);
  });

  it('the probe interval cap is a setting', async () => {
    const events: number[] = [];
    const h = harness({ onOutage: (ms) => events.push(ms), outageProbeIntervalMs: 500 }, () => down(), 10);
    for (let i = 0; i < 10; i++) h.s.add(`m${i}`, 'a@x.example', Date.now());
    await vi.advanceTimersByTimeAsync(3000);
    expect(events.length).toBeGreaterThan(4);
    expect(new Set(events)).toEqual(new Set([500]));
    expect(h.s.size()).toBe(10);
  });
});

describe('accounts', () => {
  it('limits and pauses are per (account, mailbox): the same mailbox name in two tenants is two lanes', async () => {
    const paused: [string, string][] = [];
    let throttled = false;
    const running = new Map<string, number>();
    const most = new Map<string, number>();
    const s = new Scheduler({ ...base, perMailboxConcurrency: 1, onPause: (mailbox, _ms, _reason, account) => paused.push([account, mailbox]) }, async (m) => {
      running.set(m.account, (running.get(m.account) ?? 0) + 1);
      most.set(m.account, Math.max(most.get(m.account) ?? 0, running.get(m.account)!));
      await new Promise((r) => setTimeout(r, 100));
      running.set(m.account, running.get(m.account)! - 1);
      if (m.id !== 'a0' || throttled) return { kind: 'done' };
      throttled = true;
      return { kind: 'throttled', retryAfterMs: 5000 };
    });
    for (let i = 0; i < 3; i++) {
      s.add(`a${i}`, 'scans@shared.example', Date.now(), 'contoso');
      s.add(`b${i}`, 'scans@shared.example', Date.now(), 'fabrikam');
    }
    await vi.advanceTimersByTimeAsync(150);
    // Both lanes ran at once, one each; only contoso's is paused by its throttle.
    expect(most).toEqual(new Map([['contoso', 1], ['fabrikam', 1]]));
    expect(paused).toEqual([['contoso', 'scans@shared.example']]);
    await vi.advanceTimersByTimeAsync(400);
    expect(s.size()).toBe(3); // fabrikam drained; contoso waits out its pause
    await vi.advanceTimersByTimeAsync(6000);
    expect(s.size()).toBe(0);
  });
});

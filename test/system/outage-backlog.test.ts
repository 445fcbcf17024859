/**
 * A backlog after an outage, with the real relay binary and the emulator: Graph and Entra ID unreachable
 * (connections refused), mail accepted, the relay restarted while they still are, then Graph back. Nothing
 * here is timed: what is checked is that the outage advanced no message's retry schedule, that its failures
 * were held (not given timers), and that the `graph-reachable` event released them all, each sent once.
 */

import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { useTestbed } from '../helpers/graph-relay.js';
import type { LogLine, RelayProcess } from '../helpers/relay-process.js';

const tb = useTestbed();

const N = 24;
const SENDERS = ['alice', 'bob', 'carol'].map((u) => `${u}@contoso.example`);
// Long retry timers: had the outage set them, the messages would still be waiting at the end of the test.
const CONFIG = { delivery: { retry: { schedule: ['10m', '20m'], outageProbeInterval: '300ms' } } };

function envelopes(r: RelayProcess): { id: string; attempts: number; nextAttemptAt: string; receivedAt: string; lastError: { reason: string } | null }[] {
  const dir = path.join(r.spoolDir, 'queue');
  const files = readdirSync(dir);
  return files
    .filter((f) => f.endsWith('.msg'))
    .map((f) => {
      const id = f.slice(0, -4);
      if (files.includes(`${id}.json`)) return JSON.parse(readFileSync(path.join(dir, `${id}.json`), 'utf8'));
      // No state file: the envelope written at acceptance, the JSON line before the fixed-size footer.
      const text = readFileSync(path.join(dir, f), 'latin1');
      const len = Number(/#envelope (\d+)\s*$/.exec(text)![1]);
      const footer = /#envelope \d+\s*$/.exec(text)![0];
      return JSON.parse(text.slice(text.length - footer.length - len, text.length - footer.length));
    });
}

const deferredLines = (r: RelayProcess): LogLine[] => r.logs.filter((l) => l.event === 'deferred');

describe('a backlog after an outage, with a restart in it', () => {
  it('holds every message while Graph and Entra ID are unreachable, advances no retry schedule, and releases them all at the first answer', async () => {
    await tb.emu.setUnreachable(true);
    const r1 = await tb.relay(CONFIG);
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: r1.smtpPort, secure: false, ignoreTLS: true, pool: true, maxConnections: 3 });
    try {
      await Promise.all(Array.from({ length: N }, (_, i) => t.sendMail({ from: SENDERS[i % SENDERS.length], to: 'someone@fabrikam.example', subject: `backlog ${i}`, text: 'x' })));
    } finally {
      t.close();
    }
    await r1.waitForLogs((l) => l.event === 'received', N);
    await r1.waitForLog((l) => l.event === 'graph-unreachable');
    await r1.stop();

    // Restarted while Graph is still down: the whole queue is due at once, and fails again.
    const r2 = await tb.relay(CONFIG, { dir: r1.dir });
    expect((await r2.waitForLog((l) => l.event === 'started')).queued).toBe(N);
    const opened = await r2.waitForLog((l) => l.event === 'graph-unreachable');
    // Several probes while it stays down.
    await r2.waitForLogs((l) => l.event === 'graph-unreachable', 3);

    // What the outage left on disk: no attempt counted, no next attempt time moved, the reason recorded.
    const during = envelopes(r2);
    expect(during).toHaveLength(N);
    for (const env of during) {
      expect(env.attempts).toBe(0);
      expect(env.nextAttemptAt).toBe(env.receivedAt);
    }
    expect(during.filter((e) => e.lastError).length).toBeGreaterThan(0);
    for (const e of during) if (e.lastError) expect(e.lastError.reason).toMatch(/^(network-ECONNREFUSED|token-unavailable)$/);

    await tb.emu.setUnreachable(false);
    const back = await r2.waitForLog((l) => l.event === 'graph-reachable', 20_000);
    await r2.waitForLogs((l) => l.event === 'delivered', N, 20_000);

    // Every message once, each on its first counted attempt.
    const subjects = tb.emu.sent.map((s) => /Subject: (backlog \d+)/.exec(s.mime!.toString())![1]).sort();
    expect(subjects).toEqual(Array.from({ length: N }, (_, i) => `backlog ${i}`).sort());
    const delivered = r2.logs.filter((l) => l.event === 'delivered');
    expect(delivered.map((l) => l['attempt'])).toEqual(Array(N).fill(1));
    expect(r2.logs.some((l) => l.event === 'outcome-unknown' || l.event === 'possible-duplicate')).toBe(false);

    // The outage's failures were held, and did not carry growing attempt numbers, in either run.
    for (const r of [r1, r2]) {
      const deferred = deferredLines(r);
      expect(deferred.length).toBeGreaterThan(0);
      for (const l of deferred) expect(l).toMatchObject({ held: true, attempt: 0 });
      expect(deferred.some((l) => 'retryInMs' in l)).toBe(false);
    }
    // The breaker held what had failed; the first answer released it: the graph-reachable line says how
    // many, and every delivery but the probe's comes after it.
    expect(Number(opened['held'])).toBeGreaterThan(0);
    expect(Number(back['released'])).toBeGreaterThan(0);
    const backAt = r2.logs.indexOf(back);
    expect(delivered.filter((l) => r2.logs.indexOf(l) < backAt).length).toBeLessThanOrEqual(1);
    // Between the probes nothing else started: one deferred line per probe at most while the breaker was open.
    const unreachable = r2.logs.filter((l) => l.event === 'graph-unreachable');
    expect(unreachable.every((l) => Number(l['pauseMs']) <= 300)).toBe(true);
  });
});

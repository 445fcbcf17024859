/**
 * queue-scale --prefill N: a huge queue made by writing spool files directly (test/helpers/prefill.ts, the
 * spool's own format), as a long outage with a busy application would leave it. Then a relay starts on it
 * with Graph and Entra ID unreachable: restart → listening, → "started", RSS with the queue loaded (the
 * active set full); then Graph comes back: time to the first delivery, and the drain's progress for a while.
 */

import { rmSync } from 'node:fs';
import path from 'node:path';
import { prefillQueue } from '../test/helpers/prefill.js';
import { procFigures, sleep, table, verdict, type EmulatorChild, type RelayChild, startRelay } from './lib.js';

export interface PrefillPlan {
  emu: EmulatorChild;
  dir: string;
  n: number;
  mailboxes: number;
  latencyMs: number;
  drainSeconds: number;
  delivery: Record<string, unknown>;
}

async function gauge(relay: RelayChild, name: string): Promise<number> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${relay.adminPort}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(text)?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

export async function prefillRun(p: PrefillPlan): Promise<void> {
  const spoolDir = path.join(p.dir, 'relay', 'spool');
  const t0 = Date.now();
  prefillQueue({ spoolDir, n: p.n, mailbox: (i) => `mailbox${i % p.mailboxes}@bench.example`, progress: (k) => k % 100_000 === 0 && process.stdout.write(`  prefilled ${k}\n`) });
  const prefillS = (Date.now() - t0) / 1000;
  await p.emu.setUnreachable(true);
  let relay: RelayChild | null = null;
  try {
    relay = await startRelay({ dir: path.join(p.dir, 'relay'), graph: p.emu.graph, delivery: p.delivery });
    const listeningS = ((relay.firstAt.listening ?? NaN) - relay.spawnedAt) / 1000;
    const startedS = ((relay.firstAt.started ?? NaN) - relay.spawnedAt) / 1000;
    // The active set fills (the breaker holds it: Graph is down), then memory settles.
    const deadline = Date.now() + 120_000;
    let activeNow = 0;
    const activeWant = Math.min(p.n, Number(p.delivery['activeLimit'] ?? 20_000));
    while (Date.now() < deadline && (activeNow = await gauge(relay, 'relay_queue_active_messages')) < activeWant) await sleep(500);
    await sleep(3000);
    const loaded = procFigures(relay.pid);
    const mem = await relay.memory();
    const queuedGauge = await gauge(relay, 'relay_queue_messages\\{state="queued"\\}');
    // Graph back.
    await p.emu.reset();
    await p.emu.setFaults({ latencyMs: p.latencyMs });
    const backAt = Date.now();
    await p.emu.setUnreachable(false);
    const first = await p.emu.waitForSent(1, 60_000);
    const firstS = (first.first - backAt) / 1000;
    const progress: Record<string, string | number>[] = [];
    let peak = loaded.hwmMB;
    for (let s = 5; s <= p.drainSeconds; s += 5) {
      await sleep(Math.max(0, backAt + s * 1000 - Date.now()));
      const sent = await p.emu.sent();
      const f = procFigures(relay.pid);
      peak = Math.max(peak, f.hwmMB);
      progress.push({ 'after Graph back, s': s, delivered: sent.count, 'msgs/s': sent.count / s, 'RSS MB': f.rssMB, 'active set': await gauge(relay, 'relay_queue_active_messages'), queued: await gauge(relay, 'relay_queue_messages\\{state="queued"\\}') });
    }
    const optimumRate = (4 * p.mailboxes * 1000) / p.latencyMs;
    const rows = [
      { step: `prefill ${p.n} spool files (no fsync)`, value: `${prefillS.toFixed(1)} s` },
      { step: 'restart → "listening" (SMTP)', value: `${listeningS.toFixed(2)} s` },
      { step: 'restart → "started" (queue counted)', value: `${startedS.toFixed(2)} s` },
      { step: `queue loaded (active set ${activeNow}, queued gauge ${queuedGauge}), Graph down`, value: `RSS ${loaded.rssMB.toFixed(0)} MB, heap ${mem.heapUsedMB.toFixed(0)}/${mem.heapTotalMB.toFixed(0)} MB` },
      { step: 'Graph back → first delivery', value: `${firstS.toFixed(2)} s` },
      { step: `drain for ${p.drainSeconds} s`, value: `peak RSS ${peak.toFixed(0)} MB; Graph's limit ${optimumRate.toFixed(0)} msgs/s` },
    ];
    process.stdout.write(`\n${table(rows)}\n\n${table(progress)}\n`);
    const ok = loaded.rssMB <= 150 && peak <= 150 && listeningS <= 2 && firstS <= 5;
    process.stdout.write(
      `\nSUMMARY queue-scale prefill: ${p.n} queued: RSS ${loaded.rssMB.toFixed(0)} MB loaded, peak ${peak.toFixed(0)} MB while draining (target ≤ 150: ${verdict(loaded.rssMB <= 150 && peak <= 150)}); ` +
        `restart → listening ${listeningS.toFixed(2)} s (≤ 2: ${verdict(listeningS <= 2)}), → started ${startedS.toFixed(2)} s; Graph back → first delivery ${firstS.toFixed(2)} s (≤ 5: ${verdict(firstS <= 5)}) [${verdict(ok)}]\n`,
    );
  } finally {
    await relay?.stop();
    const t = Date.now();
    rmSync(spoolDir, { recursive: true, force: true });
    process.stdout.write(`spool removed in ${((Date.now() - t) / 1000).toFixed(1)} s\n`);
  }
}

/**
 * Large-message route benchmark: a 20 MB and a 100 MB message through the relay (SMTP → spool → draft +
 * upload sessions) against the emulator; prints time and the relay child's peak RSS growth.
 * usage: npx tsx bench/large.ts [--sizes 20,100] (needs a built relay: npx tsc -p tsconfig.json)
 */

import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startEmulator, type SentRecord } from '../test/emulator/emulator.js';
import { startGraphRelay } from '../test/helpers/graph-relay.js';
import { composeToFile, randomFile, sendFile } from '../test/helpers/large-mail.js';
import type { RelayProcess } from '../test/helpers/relay-process.js';

const MB = 1024 * 1024;
const UPN = 'scanner@contoso.example';
const TARGET_GROWTH_MB = 100;

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '20,100' } } });
const sizes = String(values.sizes).split(',').map(Number);

function status(pid: number): { rss: number; hwm: number } {
  let text = '';
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // the child has gone: zeros
  }
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}


/** Resets the kernel's peak-RSS mark (VmHWM) of a process; false when not permitted. */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

const emu = await startEmulator();
// The emulator keeps what it receives; the bench needs only the record, so the bytes are dropped after checking.
emu.on('sent', (r: SentRecord) => {
  for (const a of r.attachments ?? []) delete a.bytes;
});

interface Row {
  size: string;
  time: string;
  baseline: string;
  peak: string;
  growth: string;
  attachments: number;
}
const rows: Row[] = [];
let worstGrowth = 0;
try {
  for (const sizeMb of sizes) {
    // Attachments of at most 40 MB each (decoded), so that the message reaches the size once base64-encoded.
    const decoded = Math.round((sizeMb * MB * 3) / 4) - 64 * 1024;
    const blobs = [];
    for (let left = decoded; left > 0; left -= 40 * MB) blobs.push(await randomFile(Math.min(left, 40 * MB)));
    const file = await composeToFile({
      from: UPN,
      to: 'joerg@contoso.example',
      subject: `bench ${sizeMb} MB`,
      text: 'benchmark',
      attachments: blobs.map((b, i) => ({ filename: `part${i + 1}.bin`, path: b.path })),
    });
    const msgSize = statSync(file).size;
    const relay: RelayProcess = await startGraphRelay(emu, { limits: { maxMessageSize: '150MB' }, log: { level: 'info' } });
    try {
      const pid = relay.child.pid!;
      // Warm-up: token, TLS and code paths, so the baseline is the relay at work, not at rest.
      const warm = await composeToFile({ from: UPN, to: 'joerg@contoso.example', subject: 'warm-up', text: 'x' });
      await sendFile(relay.smtpPort, UPN, ['joerg@contoso.example'], warm);
      await relay.waitForLog((l) => l.event === 'delivered');
      const base = status(pid).rss;
      const peakReset = resetPeak(pid);
      let sampled = base;
      const timer = setInterval(() => {
        sampled = Math.max(sampled, status(pid).rss);
      }, 25);
      const t0 = performance.now();
      await sendFile(relay.smtpPort, UPN, ['joerg@contoso.example'], file);
      const done = await relay.waitForLogs((l) => l.event === 'delivered', 2, 600_000);
      const ms = performance.now() - t0;
      clearInterval(timer);
      const now = status(pid);
      const peak = Math.max(sampled, peakReset ? now.hwm : 0);
      const last = emu.sent[emu.sent.length - 1]!;
      if (done[1]!.route !== 'large' || last.attachments?.length !== blobs.length) throw new Error(`unexpected delivery: ${JSON.stringify(done[1])}`);
      const growth = peak - base;
      worstGrowth = Math.max(worstGrowth, growth);
      rows.push({
        size: `${(msgSize / MB).toFixed(1)} MB`,
        time: `${(ms / 1000).toFixed(1)} s`,
        baseline: `${(base / MB).toFixed(0)} MB`,
        peak: `${(peak / MB).toFixed(0)} MB${peakReset ? '' : ' (sampled)'}`,
        growth: `${(growth / MB).toFixed(1)} MB`,
        attachments: blobs.length,
      });
    } finally {
      await relay.kill();
    }
  }
} finally {
  await emu.close();
}

const cols = Object.keys(rows[0] ?? {}) as (keyof Row)[];
const width = (c: keyof Row): number => Math.max(c.length, ...rows.map((r) => String(r[c]).length));
process.stdout.write(`${cols.map((c) => c.padEnd(width(c))).join('  ')}\n`);
for (const r of rows) process.stdout.write(`${cols.map((c) => String(r[c]).padEnd(width(c))).join('  ')}\n`);
const ok = worstGrowth < TARGET_GROWTH_MB * MB;
process.stdout.write(`${ok ? 'PASS' : 'FAIL'}: peak relay RSS growth ${(worstGrowth / MB).toFixed(1)} MB for messages up to ${Math.max(...sizes)} MB (target < ${TARGET_GROWTH_MB} MB)\n`);
process.exitCode = ok ? 0 : 1;

/**
 * A queue larger than the active set, with the real relay binary and the emulator: the relay starts on it
 * with Graph unreachable, holds at most delivery.activeLimit in memory and the rest on disk, accepts more
 * mail while full, serves the queue tools for messages on disk, and once Graph is back delivers every
 * message exactly once (the deleted ones never).
 */

import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { useTestbed } from '../helpers/graph-relay.js';
import { prefillQueue } from '../helpers/prefill.js';
import { CLI, type RelayProcess } from '../helpers/relay-process.js';

const tb = useTestbed();
const cli = promisify(execFile);
const queueTool = (r: RelayProcess, ...args: string[]) => cli(process.execPath, [CLI, 'queue', ...args, '--config', r.configPath], { env: { ...process.env, NODE_EXTRA_CA_CERTS: tb.emu.caCertPath } });

const N = 1200;
const LIMIT = 150;
const MAILBOXES = ['alice', 'bob', 'carol', 'dave'].map((u) => `${u}@contoso.example`);

async function gauges(r: RelayProcess): Promise<Record<string, number>> {
  const port = Number((await r.waitForLog((l) => l.event === 'admin-listening')).port);
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const get = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
  return { queued: get(/^relay_queue_messages\{state="queued"\} (\d+)$/m), active: get(/^relay_queue_active_messages (\d+)$/m) };
}

describe('a queue larger than the active set', () => {
  it('keeps at most activeLimit in memory, serves queue tools for messages on disk, and delivers each message once', { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'relay-test-'));
    const ids = prefillQueue({ spoolDir: path.join(dir, 'spool'), n: N, mailbox: (i) => MAILBOXES[i % MAILBOXES.length]! });
    await tb.emu.setUnreachable(true);
    const r = await tb.relay({ delivery: { activeLimit: LIMIT, retry: { outageProbeInterval: '300ms' } } }, { dir });
    expect((await r.waitForLog((l) => l.event === 'started')).queued).toBe(N);
    await r.waitForLog((l) => l.event === 'graph-unreachable');

    // More mail while the active set is full: accepted, and left on disk.
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: r.smtpPort, secure: false, ignoreTLS: true, pool: true, maxConnections: 2 });
    try {
      await Promise.all(Array.from({ length: 20 }, (_, i) => t.sendMail({ from: MAILBOXES[i % MAILBOXES.length], to: 'someone@fabrikam.example', subject: `late ${i}`, text: 'x' })));
    } finally {
      t.close();
    }
    await r.waitForLogs((l) => l.event === 'received', 20);
    let g = await gauges(r);
    expect(g.active).toBeLessThanOrEqual(LIMIT);
    expect(g.queued).toBe(N + 20);

    // Queue tools read the spool: every message is listed, in the active set or not; any can be deleted.
    const list = (await queueTool(r, 'list')).stdout;
    expect(list).toContain(`-- ${N + 20} queued, 0 dead`);
    const doomed = [ids[0]!, ids[N - 1]!, ids[N >> 1]!];
    expect((await queueTool(r, 'delete', ...doomed)).stdout).toContain(`${doomed.length} message(s) deleted`);
    g = await gauges(r);
    expect(g.queued).toBe(N + 20 - doomed.length);

    await tb.emu.setUnreachable(false);
    const want = N + 20 - doomed.length;
    await r.waitForLogs((l) => l.event === 'delivered', want, 90_000);
    await new Promise((res) => setTimeout(res, 500));
    const subjects = tb.emu.sent.map((s) => /Subject: ((?:prefilled|late) \d+)/.exec(s.mime!.toString())![1]!);
    expect(new Set(subjects).size).toBe(subjects.length); // none twice
    expect(subjects).toHaveLength(want);
    for (const id of doomed) expect(subjects).not.toContain(`prefilled ${ids.indexOf(id)}`);
    expect(r.logs.filter((l) => l.event === 'delivered')).toHaveLength(want);
    expect(r.logs.some((l) => l.event === 'spool-unreadable' || l.event === 'spool-scan-failed')).toBe(false);
    g = await gauges(r);
    expect(g).toEqual({ queued: 0, active: 0 });
  });
});

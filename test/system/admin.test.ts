/** The admin listener: /healthz, /readyz and /metrics of a real relay process, and the metric building blocks. */

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TokenProvider } from '../../src/auth/token-provider.js';
import type { SendResult } from '../../src/delivery/senders.js';
import { RelayMetrics, TOP_MAILBOXES } from '../../src/observability/metrics.js';
import { QueueTracker, deadLetterStats } from '../../src/observability/queue-stats.js';
import { ReadinessCheck } from '../../src/observability/readiness.js';
import { newQueueId, queueIdTime } from '../../src/spool/queue-id.js';
import type { Envelope } from '../../src/spool/envelope.js';
import { startEmulator, type Emulator } from '../emulator/emulator.js';
import { startGraphRelay } from '../helpers/graph-relay.js';
import { startRelay, type RelayProcess } from '../helpers/relay-process.js';

/** Prometheus text → "name{labels}" → value (labels as printed by prom-client, in its order). */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

async function adminPort(relay: RelayProcess): Promise<number> {
  return Number((await relay.waitForLog((l) => l.event === 'admin-listening')).port);
}

async function scrape(port: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseMetrics(await res.text());
}

function send(port: number, n: number, from = 'printer@contoso.example'): Promise<unknown[]> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  return Promise.all(Array.from({ length: n }, (_, i) => t.sendMail({ from, to: 'someone@fabrikam.example', subject: `m${i}`, text: 'hello' }))).finally(() => t.close());
}

describe('admin listener of a relay in capture mode', () => {
  let relay: RelayProcess;
  let port: number;

  beforeAll(async () => {
    relay = await startRelay({
      config: {
        listeners: [
          { name: 'default', host: '127.0.0.1', port: 0 },
          // No loopback client may use this one: every connection is a rejected session.
          { name: 'closed', host: '127.0.0.1', port: 0, allowedNetworks: ['192.0.2.0/24'] },
        ],
        delivery: { mode: 'capture' },
        mailboxes: { fallback: 'scanner@contoso.example' },
        admin: { host: '127.0.0.1', port: 0 },
      },
    });
    port = await adminPort(relay);
  });
  afterAll(async () => {
    expect(await relay.stop()).toBe(0);
  });

  it('answers /healthz and /readyz, and 404 elsewhere', async () => {
    const h = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ status: 'ok' });
    const r = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ready', checks: { spool: 'ok', capture: 'ok', token: 'not needed (capture mode)' } });
    expect((await fetch(`http://127.0.0.1:${port}/nope`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`, { method: 'POST' })).status).toBe(405);
  });

  it('exposes every metric, with zeroes before any mail', async () => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const name of [
      'relay_messages_received_total',
      'relay_messages_delivered_total',
      'relay_messages_deferred_total',
      'relay_messages_bounced_total',
      'relay_messages_dead_lettered_total',
      'relay_queue_messages',
      'relay_queue_oldest_message_age_seconds',
      'relay_queue_mailbox_messages',
      'relay_queue_mailbox_oldest_age_seconds',
      'relay_delivery_latency_seconds',
      'relay_graph_responses_total',
      'relay_graph_throttled_total',
      'relay_graph_paused_seconds_total',
      'relay_token_acquisitions_total',
      'relay_smtp_sessions_total',
      'relay_smtp_rejections_total',
      'relay_smtp_auth_failures_total',
      'relay_possible_duplicates_total',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    const m = parseMetrics(text);
    expect(m.get('relay_messages_received_total{account="default"}')).toBe(0);
    expect(m.get('relay_queue_messages{state="queued"}')).toBe(0);
    expect(m.get('relay_queue_messages{state="dead"}')).toBe(0);
    expect(m.get('relay_token_acquisitions_total{result="failure",account="default"}')).toBe(0);
    expect(m.get('process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('counts messages as they flow: received, delivered, latency, sessions', async () => {
    const before = await scrape(port);
    const delivered = relay.logs.filter((l) => l.event === 'delivered').length;
    await send(relay.smtpPort, 3);
    await relay.waitForLogs((l) => l.event === 'delivered', delivered + 3);
    const after = await scrape(port);
    const diff = (k: string): number => (after.get(k) ?? 0) - (before.get(k) ?? 0);
    expect(diff('relay_messages_received_total{account="default"}')).toBe(3);
    expect(diff('relay_messages_delivered_total{route="capture",account="default"}')).toBe(3);
    expect(diff('relay_delivery_latency_seconds_count')).toBe(3);
    expect(diff('relay_delivery_latency_seconds_bucket{le="+Inf"}')).toBe(3);
    expect(diff('relay_smtp_sessions_total{listener="default"}')).toBeGreaterThanOrEqual(1);
    expect(after.get('relay_queue_messages{state="queued"}')).toBe(0);
  });

  it('counts rejected sessions by listener and reason', async () => {
    const before = await scrape(port);
    const closedPort = relay.ports.closed!;
    await expect(send(closedPort, 1)).rejects.toThrow(/554/);
    const after = await scrape(port);
    expect((after.get('relay_smtp_sessions_total{listener="closed"}') ?? 0) - (before.get('relay_smtp_sessions_total{listener="closed"}') ?? 0)).toBe(1);
    expect((after.get('relay_smtp_rejections_total{reason="network"}') ?? 0) - (before.get('relay_smtp_rejections_total{reason="network"}') ?? 0)).toBe(1);
  });

  it('counts dead letters from the dead/ folder, with the oldest one\'s age', async () => {
    const dead = path.join(relay.spoolDir, 'dead');
    const id = newQueueId(Date.now() - 3_600_000);
    writeFileSync(path.join(dead, `${id}.msg`), 'x');
    try {
      const m = await scrape(port);
      expect(m.get('relay_queue_messages{state="dead"}')).toBe(1);
      expect(m.get('relay_queue_oldest_message_age_seconds{state="dead"}')).toBeGreaterThanOrEqual(3600);
    } finally {
      rmSync(path.join(dead, `${id}.msg`));
    }
  });

  it('is not ready while the spool cannot be written, and ready again after', async () => {
    const tmp = path.join(relay.spoolDir, 'tmp');
    rmSync(tmp, { recursive: true });
    writeFileSync(tmp, 'not a folder'); // root ignores permission bits, so break the path itself
    try {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(r.status).toBe(503);
      const body = (await r.json()) as { status: string; reason: string };
      expect(body.status).toBe('not ready');
      expect(body.reason).toMatch(/^spool not writable: ENOTDIR/);
    } finally {
      rmSync(tmp);
      mkdirSync(tmp);
    }
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
  });
});

describe('admin listener of a relay delivering to Graph', () => {
  let emu: Emulator;
  let relay: RelayProcess;
  let port: number;

  beforeAll(async () => {
    emu = await startEmulator();
    relay = await startGraphRelay(emu, { admin: { port: 0 } });
    port = await adminPort(relay);
  });
  afterAll(async () => {
    await relay?.stop();
    await emu?.close();
  });

  it('counts Graph answers, throttling, pauses and token acquisitions', async () => {
    const r0 = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(r0.status).toBe(200); // obtains a token to prove it can
    expect(((await r0.json()) as { checks: { token: string } }).checks.token).toBe('ok');
    emu.script('printer@contoso.example', [{ status: 429, code: 'TooManyRequests', retryAfter: 1 }]);
    await send(relay.smtpPort, 1);
    await relay.waitForLog((l) => l.event === 'delivered');
    const m = await scrape(port);
    expect(m.get('relay_token_acquisitions_total{result="success",account="default"}')).toBe(1);
    expect(m.get('relay_graph_responses_total{status="429",code="TooManyRequests",account="default"}')).toBe(1);
    expect(m.get('relay_graph_responses_total{status="202",code="none",account="default"}')).toBe(1);
    expect(m.get('relay_graph_throttled_total{account="default"}')).toBe(1);
    expect(m.get('relay_messages_deferred_total{reason="throttled",account="default"}')).toBe(1);
    expect(m.get('relay_graph_paused_seconds_total')).toBeGreaterThanOrEqual(1);
    expect(m.get('relay_messages_delivered_total{route="mime",account="default"}')).toBe(1);
  });

  it('is not ready when no token can be had', async () => {
    // A relay that never got a token, against an Entra ID that refuses it: at start, and when readiness asks.
    emu.scriptToken([{ status: 401, error: 'invalid_client', aadsts: 7000215 }, { status: 401, error: 'invalid_client', aadsts: 7000215 }]);
    const other = await startGraphRelay(emu, { admin: { port: 0 } });
    try {
      await other.waitForLog((l) => l.event === 'token-failed'); // the attempt at start
      const r = await fetch(`http://127.0.0.1:${await adminPort(other)}/readyz`);
      expect(r.status).toBe(503);
      expect(((await r.json()) as { reason: string }).reason).toMatch(/^no Graph token: /);
      const m = await scrape(await adminPort(other));
      expect(m.get('relay_token_acquisitions_total{result="failure",account="default"}')).toBe(2);
    } finally {
      await other.stop();
    }
  });
});

describe('metric building blocks', () => {
  const env = (id: string, mailbox: string, receivedAt: number): Envelope => ({ id, mailbox, receivedAt: new Date(receivedAt).toISOString() }) as Envelope;

  it('caps mailbox labels at the top mailboxes by queue size plus "other"', () => {
    const q = new QueueTracker();
    const now = Date.UTC(2026, 0, 1);
    for (let b = 0; b < 30; b++) for (let i = 0; i <= b; i++) q.add(`m${b}-${i}`, `box${b}@contoso.example`, now - (b * 100 + i) * 1000);
    const s = q.snapshot(now, TOP_MAILBOXES);
    expect(s.mailboxes).toHaveLength(TOP_MAILBOXES + 1);
    expect(s.mailboxes[0]).toEqual({ mailbox: 'box29@contoso.example', messages: 30, oldestAgeSeconds: 2929 });
    expect(s.mailboxes[TOP_MAILBOXES]).toEqual({ mailbox: 'other', messages: 55, oldestAgeSeconds: 909 }); // boxes 0..9: 1+…+10
    expect(s.messages).toBe(465);
    expect(s.oldestAgeSeconds).toBe(2929);
    for (let i = 0; i < 30; i++) q.remove(`m29-${i}`);
    expect(q.size).toBe(435);
  });

  it('reads the time back from a queue id', () => {
    const t = Date.UTC(2026, 5, 1, 12, 0, 0, 123);
    expect(queueIdTime(newQueueId(t))).toBe(t);
  });

  it('reports an empty or missing dead-letter folder as zero', async () => {
    expect(await deadLetterStats('/nonexistent/dead', Date.now())).toEqual({ messages: 0, oldestAgeSeconds: 0 });
  });

  it('feeds counters and queue gauges from the events', async () => {
    const m = new RelayMetrics({ processMetrics: false, deadDir: '/nonexistent/dead' });
    m.account('default'); // as createRelay does for every account: its series start at 0
    const now = Date.now();
    m.paused('scans@contoso.example', 2000, now);
    m.paused('scans@contoso.example', 2500, now + 1000); // extends the first pause by 1.5 s
    m.paused('scans@contoso.example', 500, now + 1000); // inside it: nothing
    for (const id of ['a', 'b', 'c']) m.accepted(env(id, 'Scans@Contoso.example', now - 10_000));
    const mime = (verdict: SendResult['verdict'], status?: number): SendResult => ({ verdict, route: 'mime', ...(status ? { status } : {}) });
    m.deliveryEvents.delivered(env('a', 'scans@contoso.example', now), mime({ kind: 'delivered' }, 202), 1500);
    m.deliveryEvents.deferred(env('b', 'scans@contoso.example', now), mime({ kind: 'transient', reason: 'timeout', outcomeUnknown: true }));
    m.deliveryEvents.unknownOutcome(env('b', 'scans@contoso.example', now), 'looking');
    m.deliveryEvents.unknownOutcome(env('b', 'scans@contoso.example', now), 'found');
    m.deliveryEvents.unknownOutcome(env('c', 'scans@contoso.example', now), 'unchecked');
    m.deliveryEvents.deadLettered(env('b', 'scans@contoso.example', now), 'invalid-recipients');
    m.rejected('auth');
    const p = parseMetrics((await m.render()).body);
    expect(p.get('relay_messages_received_total{account="default"}')).toBe(3);
    expect(p.get('relay_queue_messages{state="queued"}')).toBe(1);
    expect(p.get('relay_queue_mailbox_messages{mailbox="scans@contoso.example"}')).toBe(1);
    expect(p.get('relay_queue_mailbox_oldest_age_seconds{mailbox="scans@contoso.example"}')).toBeGreaterThanOrEqual(10);
    expect(p.get('relay_possible_duplicates_total')).toBe(1);
    expect(p.get('relay_unknown_outcomes_total{resolution="found",account="default"}')).toBe(1);
    expect(p.get('relay_unknown_outcomes_total{resolution="resent",account="default"}')).toBe(0);
    expect(p.get('relay_messages_dead_lettered_total{reason="invalid-recipients",account="default"}')).toBe(1);
    expect(p.get('relay_delivery_latency_seconds_bucket{le="2.5"}')).toBe(1);
    expect(p.get('relay_delivery_latency_seconds_bucket{le="1"}')).toBe(0);
    expect(p.get('relay_graph_paused_seconds_total')).toBe(3.5);
    expect(p.get('relay_smtp_auth_failures_total')).toBe(1);
    expect(p.get('relay_smtp_rejections_total{reason="auth"}')).toBe(1);
  });

  it('bounds label values fed from outside', async () => {
    const m = new RelayMetrics({ processMetrics: false });
    for (let i = 0; i < 80; i++) m.deliveryEvents.graphResponse({ verdict: { kind: 'permanent', reason: 'x' }, route: 'mime', status: 400, code: `Code${i}` });
    const p = parseMetrics((await m.render()).body);
    const series = [...p.keys()].filter((k) => k.startsWith('relay_graph_responses_total{'));
    expect(series.length).toBe(51);
    expect(p.get('relay_graph_responses_total{status="400",code="other",account="default"}')).toBe(30);
  });

  it('readiness: shutting down, and a token that cannot be had', async () => {
    const dir = path.join(process.env.TMPDIR ?? '/tmp', `readyz-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const failing: TokenProvider = { lastSuccessAt: null, getToken: () => Promise.reject(new Error('AADSTS7000215: Invalid client secret provided.')) };
    expect(await new ReadinessCheck({ probeDir: dir, tokens: null, stopping: () => true }).check()).toMatchObject({ ready: false, reason: 'shutting down' });
    expect(await new ReadinessCheck({ probeDir: dir, tokens: failing, stopping: () => false }).check()).toMatchObject({ ready: false, reason: 'no Graph token: AADSTS7000215: Invalid client secret provided.' });
    const recent: TokenProvider = { lastSuccessAt: Date.now(), getToken: () => Promise.reject(new Error('not called')) };
    expect(await new ReadinessCheck({ probeDir: dir, tokens: recent, stopping: () => false }).check()).toMatchObject({ ready: true });
    rmSync(dir, { recursive: true });
  });
});

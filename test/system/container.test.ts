/**
 * The container image end to end: build it with podman, run it against the standalone emulator, send
 * mail over SMTP, stop it with SIGTERM while a delivery is in flight and check it drained and exited 0.
 * Needs podman (deploy/ci-container.sh installs it and sets RELAY_CONTAINER_TEST=1).
 */

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunnerInfo } from '../emulator/types.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const IMAGE = process.env.RELAY_CONTAINER_IMAGE ?? 'smtp-graph-relay:test';
const run = promisify(execFile);

type LogLine = Record<string, unknown> & { event?: string };

type EmulatorInfo = RunnerInfo;

/** A port free right now on the host (the container shares the host's network). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function startStandaloneEmulator(): Promise<{ child: ChildProcess; info: EmulatorInfo }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'test/emulator/main.ts'), '--port', '0'], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`emulator exited with ${code}`)));
    createInterface({ input: child.stdout! }).once('line', (line) => resolve({ child, info: JSON.parse(line) as EmulatorInfo }));
  });
}

/** Follows `podman logs -f`, so that tests await log lines instead of sleeping. */
class ContainerLog {
  readonly lines: LogLine[] = [];
  private readonly waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  private readonly proc: ChildProcess;

  constructor(id: string) {
    this.proc = spawn('podman', ['logs', '-f', id], { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [this.proc.stdout!, this.proc.stderr!]) {
      createInterface({ input: stream }).on('line', (raw) => {
        let l: LogLine;
        try {
          l = JSON.parse(raw) as LogLine;
        } catch {
          l = { msg: raw };
        }
        this.lines.push(l);
        for (const w of [...this.waiters]) if (w.pred(l)) this.waiters.splice(this.waiters.indexOf(w), 1), w.resolve(l);
      });
    }
  }

  waitFor(pred: (l: LogLine) => boolean, what: string, timeoutMs = 60_000): Promise<LogLine> {
    const hit = this.lines.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${what}" log line; got:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  }

  /** `podman logs -f` ends by itself when the container stops. */
  ended(): Promise<void> {
    return new Promise((resolve) => (this.proc.exitCode !== null ? resolve() : this.proc.once('close', () => resolve())));
  }
}

describe('container image', () => {
  let emu: { child: ChildProcess; info: EmulatorInfo };
  let agent: Agent;
  let id: string;
  let logs: ContainerLog;
  let smtpPort: number;
  let adminPort: number;

  const control = async (method: 'GET' | 'POST', action: string, body?: unknown): Promise<unknown> => {
    const res = await request(`${emu.info.controlUrl}/${action}`, {
      method,
      dispatcher: agent,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
    });
    return res.body.json();
  };
  const inFlight = async (): Promise<number> =>
    Object.values(((await control('GET', 'stats')) as { perMailbox: Record<string, { inFlight: number }> }).perMailbox).reduce((n, m) => n + m.inFlight, 0);

  beforeAll(async () => {
    await run('podman', ['build', '--format', 'docker', '--pull=never', '-t', IMAGE, REPO], { maxBuffer: 64 << 20 });
    emu = await startStandaloneEmulator();
    agent = new Agent({ connect: { ca: readFileSync(emu.info.caCertPath) } });
    adminPort = await freePort();
    const e = emu.info;
    const { stdout } = await run('podman', [
      'run', '-d', '--pull=never', '--network', 'host',
      '-v', `${e.caCertPath}:/run/emulator/ca.pem:ro`,
      '-e', 'NODE_EXTRA_CA_CERTS=/run/emulator/ca.pem',
      '-e', `RELAY_GRAPH_URL=${e.graphUrl}`,
      '-e', `AZURE_AUTHORITY_HOST=${e.authorityHost}`,
      '-e', `AZURE_TENANT_ID=${e.tenantId}`,
      '-e', `AZURE_CLIENT_ID=${e.clientId}`,
      '-e', `AZURE_CLIENT_SECRET=${e.clientSecret}`,
      '-e', 'RELAY_SENDER_DOMAINS=contoso.example',
      // The host's network: let the kernel pick the SMTP port; the admin port must be known to HEALTHCHECK.
      '-e', 'RELAY_SMTP_PORT=0',
      '-e', `RELAY_ADMIN_PORT=${adminPort}`,
      '-e', 'RELAY_SHUTDOWN_GRACE_MS=25000',
      IMAGE,
    ]);
    id = stdout.trim();
    logs = new ContainerLog(id);
    await logs.waitFor((l) => l.event === 'started', 'started');
    smtpPort = Number((await logs.waitFor((l) => l.event === 'listening', 'listening')).port);
  }, 900_000); // a cold build downloads the npm dependencies twice

  afterAll(async () => {
    if (id) await run('podman', ['rm', '-f', '-v', id]).catch(() => undefined);
    emu?.child.kill('SIGTERM');
    await agent?.close();
  });

  it('runs as the unprivileged node user with the spool as a volume', async () => {
    const { stdout } = await run('podman', ['image', 'inspect', '--format', '{{.Config.User}} {{json .Config.Volumes}} {{json .Config.ExposedPorts}}', IMAGE]);
    expect(stdout).toContain('node:node');
    expect(stdout).toContain('/var/spool/smtp-graph-relay');
    expect(stdout).toContain('2525/tcp');
    expect(stdout).toContain('8025/tcp');
    const who = await run('podman', ['exec', id, 'id', '-u']);
    expect(who.stdout.trim()).toBe('1000');
  });

  it('does not start without a sender mapping, and says which variables to set', async () => {
    const res = await run('podman', ['run', '--rm', '--pull=never', '--network', 'none', '-e', 'AZURE_TENANT_ID=6f1d3c2b-8a4e-4b7f-9c5d-2e0a1b3c4d5e', '-e', 'AZURE_CLIENT_ID=0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f', '-e', 'AZURE_CLIENT_SECRET=s', IMAGE]).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code ?? -1, stderr: err.stderr ?? '' }),
    );
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/configuration error: mailboxes: .*RELAY_SENDER_DOMAINS.*RELAY_MAILBOX_MAP.*RELAY_FALLBACK_MAILBOX/);
  });

  it('is healthy and ready (the image HEALTHCHECK and /readyz)', async () => {
    await run('podman', ['healthcheck', 'run', id]); // rejects on a non-zero exit
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: { spool: 'ok', token: 'ok' } });
  });

  it('queue commands need no flags inside the container', async () => {
    const res = await run('podman', ['exec', id, 'node', 'dist/cli.js', 'queue', 'list']);
    expect(res.stdout).toMatch(/-- \d+ queued, 0 dead/);
  });

  it('capture mode writes to its volume, as the unprivileged user, and /readyz checks that folder', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const admin = await freePort();
    const { stdout } = await run('podman', [
      'run', '-d', '--pull=never', '--network', 'host', '-e', 'RELAY_DELIVERY=capture', '-e', 'RELAY_FALLBACK_MAILBOX=scans@contoso.example',
      '-e', `RELAY_SMTP_PORT=${port}`, '-e', `RELAY_ADMIN_PORT=${admin}`, IMAGE,
    ]);
    const cid = stdout.trim();
    try {
      const clog = new ContainerLog(cid);
      await clog.waitFor((l) => l.event === 'started', 'started');
      const ready = await fetch(`http://127.0.0.1:${admin}/readyz`);
      expect(await ready.json()).toMatchObject({ status: 'ready', checks: { spool: 'ok', capture: 'ok', token: 'not needed (capture mode)' } });
      const t = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
      await t.sendMail({ from: 'scanner@printer.local', to: 'alice@contoso.example', subject: 'captured', text: 'hello' });
      t.close();
      const done = await clog.waitFor((l) => l.event === 'delivered', 'delivered');
      const files = (await run('podman', ['exec', cid, 'ls', '/var/lib/smtp-graph-relay/capture'])).stdout.trim().split('\n').sort();
      expect(files).toEqual([`${done.qid}.eml`, `${done.qid}.json`]);
    } finally {
      await run('podman', ['rm', '-f', '-v', cid]).catch(() => undefined);
    }
  });

  it('relays a message to Graph and drains on SIGTERM', { timeout: 120_000 }, async () => {
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort, secure: false, ignoreTLS: true });
    await t.sendMail({ from: 'scanner@contoso.example', to: 'alice@fabrikam.example', subject: 'first', text: 'hello' });
    await logs.waitFor((l) => l.event === 'delivered', 'delivered');
    const sent = (await control('GET', 'sent')) as { upn: string }[];
    expect(sent.map((s) => s.upn.toLowerCase())).toEqual(['scanner@contoso.example']);

    // The next sendMail is answered 5 s late: it is in flight when SIGTERM comes and must finish.
    await control('POST', 'script', { upn: 'scanner@contoso.example', steps: [{ delayMs: 5000 }] });
    await t.sendMail({ from: 'scanner@contoso.example', to: 'bob@fabrikam.example', subject: 'second', text: 'hello again' });
    t.close();
    // Wait until the emulator holds the request (it has no event stream: poll it, no fixed sleep).
    while ((await inFlight()) < 1) await new Promise((r) => setTimeout(r, 50));

    await run('podman', ['stop', '-t', '30', id]);
    await logs.ended();
    const { stdout } = await run('podman', ['inspect', '--format', '{{.State.ExitCode}}', id]);
    expect(stdout.trim()).toBe('0');
    const events = logs.lines.map((l) => l.event).filter((e) => e === 'stopping' || e === 'delivered' || e === 'stopped' || e === 'grace-expired');
    expect(events).toEqual(['delivered', 'stopping', 'delivered', 'stopped']);
    expect(logs.lines.find((l) => l.event === 'stopped')).toMatchObject({ queued: 0 });
    expect(((await control('GET', 'sent')) as unknown[]).length).toBe(2);
  });
});

/** Shared parts of the benchmarks: a pipelining raw-socket SMTP client, relay and emulator child processes, /proc figures, tables. */

import type { RunnerInfo } from '../test/emulator/types.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';

export const REPO = path.resolve(import.meta.dirname, '..');
/** The relay under test; BENCH_RELAY_CLI points at another build (A/B runs of a change). */
export const CLI = process.env.BENCH_RELAY_CLI ? path.resolve(process.env.BENCH_RELAY_CLI) : path.join(REPO, 'dist/cli.js');
export const BENCH = import.meta.dirname;

// ---------------------------------------------------------------------------------------------
// Command line

export interface CommonArgs {
  n: number;
  profile: boolean;
  keep: boolean;
  dir: string;
  values: Record<string, string | boolean | undefined>;
}

/** Parses `--n`, `--profile`, `--keep`, `--dir` plus the script's own string options. */
export function args(defaults: { n: number }, extra: string[] = []): CommonArgs {
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    n: { type: 'string' },
    profile: { type: 'boolean' },
    keep: { type: 'boolean' },
    dir: { type: 'string' },
    help: { type: 'boolean' },
  };
  for (const e of extra) options[e] = { type: 'string' };
  const { values } = parseArgs({ options, strict: true, allowPositionals: false });
  if (values.help) {
    process.stdout.write(`options: --n N --dir DIR --profile (relay child under --cpu-prof) --keep (keep the work folder) ${extra.map((e) => `--${e} V`).join(' ')}\n`);
    process.exit(0);
  }
  const n = values.n === undefined ? defaults.n : Number(values.n);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--n must be a positive whole number (got ${String(values.n)})`);
  const base = typeof values.dir === 'string' ? values.dir : os.tmpdir();
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(path.join(base, 'relay-bench-'));
  return { n, profile: Boolean(values.profile), keep: Boolean(values.keep), dir, values: values as Record<string, string | boolean | undefined> };
}

export function num(v: string | boolean | undefined, def: number): number {
  if (v === undefined || typeof v === 'boolean') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`not a non-negative number: ${v}`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// Messages

/** A ~`size`-byte RFC 5322 message, dot-terminated, ready for DATA (no line starts with '.'). */
export function makeMessage(i: number, from: string, to: string, size = 10 * 1024): Buffer {
  const head =
    `From: Bench <${from}>\r\nTo: <${to}>\r\nSubject: bench message ${i}\r\n` +
    `Message-ID: <bench-${i}-${process.pid}@bench.example>\r\nDate: ${new Date().toUTCString()}\r\n` +
    'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), bodyOf(size - head.length), TERMINATOR]);
}

const TERMINATOR = Buffer.from('.\r\n', 'latin1');
const bodies = new Map<number, Buffer>();
function bodyOf(bytes: number): Buffer {
  const want = Math.max(78, bytes);
  let b = bodies.get(want);
  if (!b) {
    const line = `${'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(3).slice(0, 76)}\r\n`;
    b = Buffer.from(line.repeat(Math.ceil(want / line.length)).slice(0, want - (want % line.length)), 'latin1');
    bodies.set(want, b);
  }
  return b;
}

// ---------------------------------------------------------------------------------------------
// Minimal pipelining SMTP client (RFC 5321 + RFC 2920): MAIL, RCPT and DATA go out in one write.

export interface Reply {
  code: number;
  text: string;
}

export class SmtpClient {
  private buf = '';
  private lines: string[] = [];
  private readonly replies: Reply[] = [];
  private readonly waiters: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    socket.on('data', (s: string) => this.onData(s));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  /** Connects, reads the greeting and says EHLO. */
  static async open(port: number, host = '127.0.0.1', ehlo = 'bench.client.example'): Promise<SmtpClient> {
    const c = await SmtpClient.connect(port, host);
    await c.ehlo(ehlo);
    return c;
  }

  /** Connects and reads the greeting. */
  static async connect(port: number, host = '127.0.0.1'): Promise<SmtpClient> {
    const c = new SmtpClient(net.connect({ port, host }));
    const greeting = await c.reply();
    if (greeting.code !== 220) throw new Error(`greeting ${greeting.code} ${greeting.text}`);
    return c;
  }

  async ehlo(name = 'bench.client.example'): Promise<void> {
    this.socket.write(`EHLO ${name}\r\n`);
    const r = await this.reply();
    if (r.code !== 250) throw new Error(`EHLO ${r.code} ${r.text}`);
  }

  private onData(s: string): void {
    this.buf += s;
    let i: number;
    while ((i = this.buf.indexOf('\r\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      this.lines.push(line.slice(4));
      if (line[3] !== '-') {
        const r = { code: Number(line.slice(0, 3)), text: this.lines.join('\n') };
        this.lines = [];
        const w = this.waiters.shift();
        if (w) w.resolve(r);
        else this.replies.push(r);
      }
    }
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiters.splice(0)) w.reject(e);
  }

  reply(): Promise<Reply> {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** One transaction; `data` must be dot-stuffed and end with CRLF.CRLF. Resolves with the final reply. */
  async send(from: string, to: string, data: Buffer): Promise<Reply> {
    this.socket.write(`MAIL FROM:<${from}>\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
    const mail = await this.reply();
    // A 421 (session limit, shutdown) closes the connection: the pipelined RCPT and DATA get no reply.
    if (mail.code === 421) return mail;
    const rcpt = await this.reply();
    const dataReply = await this.reply();
    if (dataReply.code !== 354) {
      return mail.code !== 250 ? mail : rcpt.code !== 250 ? rcpt : dataReply;
    }
    this.socket.write(data);
    return this.reply();
  }

  /** QUIT, its 221, and the close: the server has let go of the connection when this resolves. */
  async quit(): Promise<void> {
    const closed = new Promise<void>((resolve) => (this.socket.destroyed ? resolve() : this.socket.once('close', () => resolve())));
    this.socket.write('QUIT\r\n');
    await this.reply().catch(() => undefined);
    this.socket.end();
    await closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export interface IngestResult {
  ok: number;
  failed: number;
  ms: number;
  rate: number;
  firstOkAt: number;
  lastOkAt: number;
  replies: Record<string, number>;
  /** The first few client-side errors (connection lost, bad greeting). */
  errors: string[];
  /** Sessions reopened after a 421 (maxMessagesPerSession, connection limits) or a lost connection. */
  reconnects: number;
}

export interface IngestPlan {
  port: number;
  n: number;
  concurrency: number;
  /** 'reuse': `concurrency` persistent sessions; 'per-message': one connection per message, `concurrency` at a time. */
  mode: 'reuse' | 'per-message';
  /** Sender of message i (its mailbox, with senderDomains). */
  from: (i: number) => string;
  to?: (i: number) => string;
  size?: number;
  /** Index offset so that warm-up and measured messages differ. */
  offset?: number;
}

/** Sends plan.n messages and times from the first MAIL (reuse: after all sessions said EHLO) to the last reply. */
export async function ingest(plan: IngestPlan): Promise<IngestResult> {
  const size = plan.size ?? 10 * 1024;
  const to = plan.to ?? ((i: number) => `rcpt${i % 50}@dest.example`);
  const offset = plan.offset ?? 0;
  // Messages are built before the clock starts, so the client does nothing but socket I/O while timed.
  const msgs = Array.from({ length: plan.n }, (_, i) => makeMessage(offset + i, plan.from(offset + i), to(offset + i), size));
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstOkAt = 0;
  let lastOkAt = 0;
  const replies: Record<string, number> = {};
  const errors: string[] = [];
  const clientError = (e: unknown): void => {
    failed++;
    if (errors.length < 5) errors.push(`${new Date().toISOString()} ${e instanceof Error ? e.message : String(e)}`);
  };
  const record = (r: Reply): void => {
    replies[r.code] = (replies[r.code] ?? 0) + 1;
    if (r.code === 250) {
      ok++;
      lastOkAt = Date.now();
      firstOkAt ||= lastOkAt;
    } else failed++;
  };
  let reconnects = 0;
  /** Opens a session; a 421 greeting (connection limit) is retried after a short pause, like an MTA would. */
  const open = async (): Promise<SmtpClient> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await SmtpClient.open(plan.port);
      } catch (e) {
        if (attempt >= 20) throw e;
        reconnects++;
        await sleep(10);
      }
    }
  };
  /** Sends message i on c; on a 421 or a lost connection, reconnects and sends it again. Returns the session to use next. */
  const sendOne = async (c: SmtpClient, i: number): Promise<SmtpClient> => {
    for (let attempt = 0; ; attempt++) {
      let r: Reply | null = null;
      try {
        r = await c.send(plan.from(offset + i), to(offset + i), msgs[i]!);
      } catch (e) {
        if (attempt >= 3) throw e;
      }
      if (r && r.code !== 421) {
        record(r);
        return c;
      }
      if (attempt >= 3) {
        record(r!);
        return c;
      }
      c.destroy();
      reconnects++;
      c = await open();
    }
  };
  let t0: number;
  if (plan.mode === 'reuse') {
    const sessions = await Promise.all(Array.from({ length: Math.min(plan.concurrency, plan.n) }, () => open()));
    t0 = performance.now();
    await Promise.all(
      sessions.map(async (c) => {
        for (let i = next++; i < plan.n; i = next++) {
          try {
            c = await sendOne(c, i);
          } catch (e) {
            clientError(e);
            c.destroy();
            c = await open();
          }
        }
        await c.quit();
      }),
    );
  } else {
    t0 = performance.now();
    await Promise.all(
      Array.from({ length: Math.min(plan.concurrency, plan.n) }, async () => {
        for (let i = next++; i < plan.n; i = next++) {
          let c: SmtpClient | undefined;
          try {
            c = await open();
            c = await sendOne(c, i);
            await c.quit();
          } catch (e) {
            clientError(e);
            c?.destroy();
          }
        }
      }),
    );
  }
  const ms = performance.now() - t0;
  return { ok, failed, ms, rate: (ok / ms) * 1000, firstOkAt, lastOkAt, replies, errors, reconnects };
}

// ---------------------------------------------------------------------------------------------
// /proc figures of a child process

export interface ProcFigures {
  rssMB: number;
  /** The part of RSS in mapped files: the node binary and shared libraries, shared with every other Node process. */
  rssFileMB: number;
  hwmMB: number;
  /** user + system CPU seconds so far, all threads. */
  cpuS: number;
  /** The same for the main thread (the event loop) alone; the rest is the thread pool and V8's helpers. */
  mainCpuS: number;
}

function cpuSeconds(statFile: string): number {
  const stat = readFileSync(statFile, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100)
}

export function procFigures(pid: number | undefined): ProcFigures {
  const out = { rssMB: NaN, rssFileMB: NaN, hwmMB: NaN, cpuS: NaN, mainCpuS: NaN };
  if (!pid) return out;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    out.rssMB = kb('VmRSS') / 1024;
    out.rssFileMB = kb('RssFile') / 1024;
    out.hwmMB = kb('VmHWM') / 1024;
    out.cpuS = cpuSeconds(`/proc/${pid}/stat`);
    out.mainCpuS = cpuSeconds(`/proc/${pid}/task/${pid}/stat`);
  } catch {
    // exited
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Child processes: relay, bare server, emulator

export interface Child {
  child: ChildProcess;
  pid: number;
  spawnedAt: number;
  exited: Promise<number | null>;
  stderr: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function track(child: ChildProcess): Child {
  const stderr: string[] = [];
  if (child.stderr) createInterface({ input: child.stderr }).on('line', (l) => stderr.push(l));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    pid: child.pid!,
    spawnedAt: Date.now(),
    exited,
    stderr,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * Node flags for a child under the CPU profiler (written when it exits, also through process.exit). Each
 * child gets a folder of its own and Node's default file names (…<pid>.<thread id>…): with one fixed name,
 * a child running under tsx had its main thread's profile overwritten by tsx's loader thread.
 */
export function profFlags(profileDir: string | null, name: string): string[] {
  if (!profileDir) return [];
  const dir = path.join(profileDir, `${name}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

export interface RelayChild extends Child {
  port: number;
  /** Counts of log events seen so far. */
  counts: Record<string, number>;
  /** Time (parent clock) when the first/last line with that event arrived. */
  firstAt: Record<string, number>;
  lastAt: Record<string, number>;
  errors: string[];
  /** Port of the admin HTTP listener (/metrics), when this build has one. */
  adminPort: number;
  waitFor(event: string, n: number, timeoutMs?: number): Promise<void>;
  /** V8 heap and external memory from the relay's /metrics (prom-client default metrics); NaN without an admin listener. */
  memory(): Promise<{ heapUsedMB: number; heapTotalMB: number; externalMB: number }>;
}

/** How the relay reaches the emulator child: the runner's JSON line. */
export type GraphDetails = RunnerInfo;

const COUNTED = ['graph-unreachable', 'graph-reachable', 'admin-listening', 'received', 'delivered', 'deferred', 'dead-lettered', 'mailbox-paused', 'started', 'listening', 'stopped'];

export interface RelayOptions {
  dir: string;
  graph: GraphDetails;
  senderDomain?: string;
  delivery?: Record<string, unknown>;
  profileDir?: string | null;
  /** The profile folder's name prefix (default "relay"). */
  name?: string;
  /** Extra YAML settings merged at the top level (`graph` into the graph section). */
  extra?: Record<string, unknown>;
  /** Another build's dist/cli.js (A/B runs in one script); default CLI. */
  cli?: string;
  /** Extra environment variables for the relay. */
  env?: Record<string, string>;
}

/** Starts dist/cli.js in graph mode with a YAML config under opts.dir (reused across restarts). */
export async function startRelay(opts: RelayOptions): Promise<RelayChild> {
  mkdirSync(opts.dir, { recursive: true });
  const config = {
    hostname: 'relay.bench.example',
    listeners: [{ name: 'default', host: '127.0.0.1', port: 0 }],
    spool: { directory: path.join(opts.dir, 'spool') },
    delivery: { mode: 'graph', ...opts.delivery },
    mailboxes: { senderDomains: [opts.senderDomain ?? 'bench.example'] },
    graph: {
      graphUrl: opts.graph.graphUrl,
      authorityHost: opts.graph.authorityHost,
      tenantId: opts.graph.tenantId,
      clientId: opts.graph.clientId,
      clientSecret: opts.graph.clientSecret,
      ...(opts.extra?.['graph'] as Record<string, unknown> | undefined),
    },
    log: { level: 'info' },
    ...Object.fromEntries(Object.entries(opts.extra ?? {}).filter(([k]) => k !== 'graph')),
  };
  const configPath = path.join(opts.dir, 'relay.yaml');
  writeFileSync(configPath, stringify(config));
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('AZURE_') || k.startsWith('RELAY_') || k === 'NODE_OPTIONS') delete env[k];
  env.NODE_EXTRA_CA_CERTS = opts.graph.caCertPath;
  env.RELAY_ADMIN_PORT = '0'; // ignored by builds without the admin listener; avoids a clash on 8025
  env.RELAY_SHUTDOWN_GRACE_MS = '3000';
  Object.assign(env, opts.env);
  const child = spawn(process.execPath, [...profFlags(opts.profileDir ?? null, opts.name ?? 'relay'), opts.cli ?? CLI, 'run', '--config', configPath], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const base = track(child);
  const counts: Record<string, number> = {};
  const firstAt: Record<string, number> = {};
  const lastAt: Record<string, number> = {};
  const errors: string[] = [];
  const waiters: { event: string; n: number; resolve: () => void }[] = [];
  let port = 0;
  const logFile = createWriteStream(path.join(opts.dir, `relay-${Date.now()}.log`));
  child.stdout!.pipe(logFile);
  child.stderr!.pipe(logFile);
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const m = /"event":"([a-z-]+)"/.exec(line);
    if (/"level":"(error|fatal)"/.test(line) && errors.length < 20) errors.push(line);
    if (!m) return;
    const ev = m[1]!;
    if (!COUNTED.includes(ev)) return;
    const now = Date.now();
    counts[ev] = (counts[ev] ?? 0) + 1;
    firstAt[ev] ??= now;
    lastAt[ev] = now;
    if (ev === 'listening' && !port) port = Number(/"port":(\d+)/.exec(line)?.[1] ?? 0);
    if (ev === 'admin-listening') relay.adminPort = Number(/"port":(\d+)/.exec(line)?.[1] ?? 0);
    for (const w of [...waiters]) {
      if (w.event === ev && counts[ev]! >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  const waitFor = (event: string, n: number, timeoutMs = 120_000): Promise<void> => {
    if ((counts[event] ?? 0) >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`relay: timed out waiting for ${n} "${event}" (got ${counts[event] ?? 0}); errors:\n${errors.join('\n')}\n${base.stderr.join('\n')}`)), timeoutMs);
      const w = {
        event,
        n,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      waiters.push(w);
      void base.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`relay exited (${code}) while waiting for "${event}":\n${base.stderr.join('\n')}\n${errors.join('\n')}`));
      });
    });
  };
  const memory = async (): Promise<{ heapUsedMB: number; heapTotalMB: number; externalMB: number }> => {
    const out = { heapUsedMB: NaN, heapTotalMB: NaN, externalMB: NaN };
    if (!relay.adminPort) return out;
    try {
      const text = await (await fetch(`http://127.0.0.1:${relay.adminPort}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
      const metric = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20;
      out.heapUsedMB = metric('nodejs_heap_size_used_bytes');
      out.heapTotalMB = metric('nodejs_heap_size_total_bytes');
      out.externalMB = metric('nodejs_external_memory_bytes');
    } catch {
      // no admin listener
    }
    return out;
  };
  const relay: RelayChild = { ...base, port: 0, adminPort: 0, counts, firstAt, lastAt, errors, waitFor, memory };
  await waitFor('started', 1, 60_000);
  relay.port = port;
  return relay;
}

/** Reads the single JSON line a helper child prints when it is ready. */
function firstJsonLine<T>(child: ChildProcess, what: string, stderr: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (line) => {
      try {
        resolve(JSON.parse(line) as T);
      } catch (e) {
        reject(new Error(`${what}: bad ready line ${line}: ${String(e)}`));
      }
    });
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before it was ready:\n${stderr.join('\n')}`)));
  });
}

const TSX = ['--import', 'tsx'];

/** The reference: a bare smtp-server that fsyncs each message into a spool dir before its 250 (bench/bare-server.ts). */
export async function startBareServer(spoolDir: string, profileDir: string | null = null, env: Record<string, string> = {}): Promise<Child & { port: number }> {
  const child = spawn(process.execPath, [...profFlags(profileDir, 'bare'), ...TSX, path.join(BENCH, 'bare-server.ts'), spoolDir], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const t = track(child);
  const { port } = await firstJsonLine<{ port: number }>(child, 'bare server', t.stderr);
  return { ...t, port };
}

export interface EmuStats {
  perMailbox: Record<string, { accepted: number; maxInFlight: number; throttled: number; inFlight: number }>;
  throttled429: number;
  requests: number;
  tokenRequests: number;
}

export interface SentSummary {
  count: number;
  /** The first and last accept (the moment a 202 goes out, after the emulated latency). */
  first: number;
  last: number;
  /** When the first Graph request arrived, before its latency. */
  firstRequest: number;
}

export interface EmulatorChild extends Child {
  graph: GraphDetails;
  call<T>(cmd: string, arg?: unknown): Promise<T>;
  stats(): Promise<EmuStats>;
  setDown(mode: '503' | 'reset' | false): Promise<void>;
  /** Graph and Entra ID out of reach: connections refused (the emulator stops listening), or back. */
  setUnreachable(on: boolean): Promise<void>;
  setFaults(f: { latencyMs?: number; jitterMs?: number; mailboxConcurrency?: number }): Promise<void>;
  reset(): Promise<void>;
  /** Resolves once `n` messages were sent (since the last reset), with the first and last accept times. */
  waitForSent(n: number, timeoutMs?: number): Promise<SentSummary>;
  sent(): Promise<SentSummary>;
}

/** Acceptance only: an emulator that holds every sendMail (10 min), up to 1000 at once per mailbox. */
export const HELD_GRAPH = { latencyMs: 600_000, mailboxConcurrency: 1000 };

/**
 * The relay's settings against HELD_GRAPH: no session limit (the bare server has none; at the default of 100
 * every session reconnects once per 100 messages), and header and body timeouts of an hour, so
 * that the held requests stay held and are not retried inside a measurement longer than a minute.
 */
export const HELD_RELAY = { limits: { maxMessagesPerSession: 100_000 }, graph: { headersTimeout: '1h', bodyTimeout: '1h' } };

/**
 * bench/graph-sink.ts in a child of its own on `port`: sendMail answered 202 unread, with the emulator's
 * certificate (its CA at `caCertPath`); the emulator must issue tokens for it (`otherResources`).
 */
export async function startGraphSink(caCertPath: string, port: number): Promise<Child & { graphUrl: string }> {
  const child = spawn(process.execPath, [...TSX, path.join(BENCH, 'graph-sink.ts'), caCertPath, String(port)], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  const t = track(child);
  const { graphUrl } = await firstJsonLine<{ graphUrl: string }>(child, 'graph-sink', t.stderr);
  return { ...t, graphUrl };
}

/** The Graph + Entra emulator (test/emulator) in a child of its own, driven over IPC (bench/emulator-child.ts). */
export async function startEmulatorChild(opts: { latencyMs?: number; jitterMs?: number; mailboxConcurrency?: number; otherResources?: string[] }): Promise<EmulatorChild> {
  const child = spawn(process.execPath, [...TSX, path.join(BENCH, 'emulator-child.ts'), JSON.stringify(opts)], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const t = track(child);
  let seq = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  child.on('message', (m: { id: number; ok: boolean; value?: unknown; error?: string }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m.value);
    else p.reject(new Error(m.error));
  });
  void t.exited.then(() => {
    for (const p of pending.values()) p.reject(new Error(`emulator exited:\n${t.stderr.join('\n')}`));
  });
  const call = <T>(cmd: string, arg?: unknown): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = ++seq;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ id, cmd, arg });
    });
  const graph = await firstJsonLine<GraphDetails>(child, 'emulator', t.stderr);
  return {
    ...t,
    graph,
    call,
    stats: () => call<EmuStats>('stats'),
    setDown: (mode) => call<void>('setDown', mode),
    setUnreachable: (on) => call<void>('setUnreachable', on),
    setFaults: (f) => call<void>('setFaults', f),
    reset: () => call<void>('reset'),
    waitForSent: (n, timeoutMs = 600_000) => call<SentSummary>('waitForSent', { n, timeoutMs }),
    sent: () => call<SentSummary>('sent'),
    stop: async () => {
      if (child.connected) child.disconnect();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return t.exited;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Output

export function table(rows: Record<string, string | number | undefined>[]): string {
  if (rows.length === 0) return '';
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: string | number | undefined): string => (v === undefined ? '' : typeof v === 'number' ? fmt(v) : v);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]): string => `| ${vals.map((v, i) => v.padEnd(width[i]!)).join(' | ')} |`;
  return [line(cols), `|${width.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n');
}

export function fmt(v: number, digits?: number): string {
  if (!Number.isFinite(v)) return '-';
  const d = digits ?? (Number.isInteger(v) || Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2);
  return v.toFixed(d);
}

export function pct(v: number): string {
  return Number.isFinite(v) ? `${(v * 100).toFixed(0)}%` : '-';
}

export function verdict(ok: boolean): string {
  return ok ? 'PASS' : 'MISS';
}

export function machine(): string {
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  return `node ${process.version}, ${os.cpus().length} cpu, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, load ${load}`;
}

/** Prints the top self-time functions of each child's main-thread profile under dir (see bench/profile-summary.ts). */
export async function summarizeProfiles(dir: string | null): Promise<void> {
  if (!dir) return;
  const { summarize } = await import('./profile-summary.js');
  // Main threads only (thread id 0 in Node's default name CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile).
  for (const child of readdirSync(dir)) {
    for (const f of readdirSync(path.join(dir, child)).filter((x) => /\.\d+\.0\.\d+\.cpuprofile$/.test(x))) {
      const file = path.join(dir, child, f);
      process.stdout.write(`\nprofile ${file}\n${summarize(file, 15)}\n`);
    }
  }
}

export function cleanup(dir: string, keep: boolean): void {
  if (keep) process.stdout.write(`work folder kept: ${dir}\n`);
  else rmSync(dir, { recursive: true, force: true });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The median of a list of figures; NaN for none. */
export function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Starts the built relay (dist/cli.js) as a real child process with a YAML config, and reads its JSON log. */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';

export const REPO = path.resolve(import.meta.dirname, '../..');
export const CLI = path.join(REPO, 'dist/cli.js');

export type LogLine = Record<string, unknown> & { event?: string; msg?: string; qid?: string; level?: string };

export interface RelayProcess {
  child: ChildProcess;
  dir: string;
  spoolDir: string;
  captureDir: string;
  configPath: string;
  smtpPort: number;
  /** Bound ports of every listener by name. */
  ports: Record<string, number>;
  logs: LogLine[];
  stderr: string[];
  /** Resolves with the first log line (past or future) that matches. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves when `n` lines match. */
  waitForLogs(pred: (l: LogLine) => boolean, n: number, timeoutMs?: number): Promise<LogLine[]>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

export interface StartOptions {
  /** The YAML configuration as an object; spool and capture folders default to the test's own folder. */
  config: Record<string, unknown>;
  env?: Record<string, string>;
  /** Reuse a folder (restart after a kill). */
  dir?: string;
  /** Wait for the "started" log line (default) or not (for start-up failures). */
  waitStarted?: boolean;
  /** For the Graph testbed: the built binary as a child process (signals, exit codes, kill -9) instead of in-process. */
  process?: boolean;
}

/** The test's folder and the YAML config every relay of a test is started with. */
export function prepare(opts: StartOptions): { dir: string; spoolDir: string; captureDir: string; configPath: string } {
  const dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), 'relay-test-'));
  const spoolDir = path.join(dir, 'spool');
  const captureDir = path.join(dir, 'capture');
  const config = structuredClone(opts.config);
  config.spool ??= { directory: spoolDir };
  const delivery = (config.delivery ??= {}) as Record<string, unknown>;
  delivery.captureDirectory ??= captureDir;
  config.listeners ??= [{ name: 'default', host: '127.0.0.1', port: 0 }];
  // Tests run in parallel: the admin listener takes a free port unless a test asks for one.
  config.admin ??= { port: 0 };
  const configPath = path.join(dir, 'relay.yaml');
  writeFileSync(configPath, stringify(config));
  return { dir, spoolDir, captureDir, configPath };
}

/** The environment a relay sees: the test runner's, without AZURE_* and RELAY_* unless the test sets them. */
export function relayEnv(opts: StartOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  for (const k of Object.keys(env)) if (k.startsWith('AZURE_') || k.startsWith('RELAY_')) if (!(opts.env && k in opts.env)) delete env[k];
  return env;
}

/** A relay's log as it arrives, and waiting for lines in it. */
export function logFeed(stderr: string[]): Pick<RelayProcess, 'logs' | 'waitForLog' | 'waitForLogs'> & { feed(l: LogLine): void } {
  const logs: LogLine[] = [];
  const waiters: { pred: (l: LogLine) => boolean; n: number; hits: LogLine[]; resolve: (v: LogLine[]) => void }[] = [];
  const feed = (l: LogLine): void => {
    logs.push(l);
    for (const w of [...waiters]) {
      if (w.pred(l)) {
        w.hits.push(l);
        if (w.hits.length >= w.n) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(w.hits);
        }
      }
    }
  };
  const waitForLogs = (pred: (l: LogLine) => boolean, n: number, timeoutMs = 30_000): Promise<LogLine[]> => {
    const hits = logs.filter(pred);
    if (hits.length >= n) return Promise.resolve(hits.slice(0, n));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`timed out waiting for ${n} log lines (got ${w.hits.length}); last lines:\n${logs.slice(-8).map((x) => JSON.stringify(x)).join('\n')}\nstderr:\n${stderr.join('\n')}`));
      }, timeoutMs);
      const w = {
        pred,
        n,
        hits,
        resolve: (v: LogLine[]) => {
          clearTimeout(timer);
          resolve(v);
        },
      };
      waiters.push(w);
    });
  };
  const waitForLog = async (pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine> => (await waitForLogs(pred, 1, timeoutMs))[0]!;
  return { logs, feed, waitForLog, waitForLogs };
}

/** Waits for "started" (or the end), then reads every listener's port from the log. */
export async function started(proc: RelayProcess, what: string): Promise<RelayProcess> {
  await Promise.race([
    proc.waitForLog((l) => l.event === 'started'),
    proc.exited.then((code) => {
      throw new Error(`${what} ended with ${code} before starting:\n${proc.stderr.join('\n')}\n${proc.logs.slice(-5).map((x) => JSON.stringify(x)).join('\n')}`);
    }),
  ]);
  for (const l of proc.logs.filter((x) => x.event === 'listening')) proc.ports[String(l.listener)] = Number(l.port);
  proc.smtpPort = Object.values(proc.ports)[0] ?? 0;
  return proc;
}

/** A relay's handle: its folders and log, with how it is stopped (`own`; its getters are kept as getters). */
export function handle(
  files: ReturnType<typeof prepare>,
  log: Pick<RelayProcess, 'logs' | 'waitForLog' | 'waitForLogs'>,
  stderr: string[],
  exited: Promise<number | null>,
  own: Pick<RelayProcess, 'child' | 'stop' | 'kill'>,
): RelayProcess {
  const base = { ...files, smtpPort: 0, ports: {}, ...log, stderr, exited };
  return Object.defineProperties(base, Object.getOwnPropertyDescriptors(own)) as RelayProcess;
}

export async function startRelay(opts: StartOptions): Promise<RelayProcess> {
  const { dir, spoolDir, captureDir, configPath } = prepare(opts);
  const child = spawn(process.execPath, [CLI, 'run', '--config', configPath], { env: relayEnv(opts), stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  const { logs, feed, waitForLog, waitForLogs } = logFeed(stderr);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      feed(JSON.parse(line) as LogLine);
    } catch {
      feed({ msg: line, raw: true });
    }
  });
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));

  const proc = handle({ dir, spoolDir, captureDir, configPath }, { logs, waitForLog, waitForLogs }, stderr, exited, {
    child,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  });
  if (opts.waitStarted === false) return proc;
  return started(proc, 'relay process');
}

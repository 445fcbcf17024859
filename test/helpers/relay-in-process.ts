/**
 * The relay built in the test's own process (createRelay, as `run` does), with the same handle as a child
 * process: the same YAML config, the same JSON log lines, the same ports. Fast, and every source file it
 * runs counts for the tests. What needs a real process (signals, exit codes, kill -9, the environment at
 * start) starts the binary instead (relay-process.ts).
 */

import type { ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import { createRelay } from '../../src/app/create-relay.js';
import type { Relay } from '../../src/app/relay.js';
import { loadConfig, redactConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { handle, logFeed, prepare, relayEnv, started, type LogLine, type RelayProcess, type StartOptions } from './relay-process.js';

export async function startInProcess(opts: StartOptions): Promise<RelayProcess> {
  const { dir, spoolDir, captureDir, configPath } = prepare(opts);
  const stderr: string[] = [];
  const { logs, feed, waitForLog, waitForLogs } = logFeed(stderr);
  let exit: (code: number | null) => void = () => undefined;
  const exited = new Promise<number | null>((resolve) => (exit = resolve));
  const cfg = loadConfig(configPath, relayEnv(opts), { requireCredentials: true, requireMailboxes: true });
  // pino writes whole lines; each is one JSON object, as on the binary's stdout.
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) feed(JSON.parse(line) as LogLine);
      done();
    },
  });
  const log = createLogger(cfg.log.level, out);
  const relay: Relay = createRelay(cfg, { log });
  log.info({ event: 'config', config: redactConfig(cfg) }, 'configuration loaded');
  let stopping: Promise<number | null> | null = null;
  const stop = (graceMs: number, signal: string): Promise<number | null> => {
    stopping ??= (async () => {
      log.info({ event: 'signal', signal }, `received ${signal}`);
      try {
        await relay.stop(graceMs);
        exit(0);
      } catch (err) {
        log.error({ event: 'stop-failed', err }, 'error while stopping');
        exit(1);
      }
      return exited;
    })();
    return stopping;
  };
  const proc = handle({ dir, spoolDir, captureDir, configPath }, { logs, waitForLog, waitForLogs }, stderr, exited, {
    get child(): ChildProcess {
      throw new Error('this relay runs in the test process: start it with { process: true } to get a child process');
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (signal === 'SIGHUP') {
        relay.reloadCertificates();
        return null;
      }
      return stop(cfg.shutdownGraceMs, signal);
    },
    // No kill -9 in-process: the relay stops at once, abandoning what is in flight (the spool keeps it).
    async kill() {
      await stop(0, 'SIGKILL');
    },
  });
  relay.start().catch((err: unknown) => {
    log.fatal({ event: 'start-failed', err }, 'relay failed to start');
    stderr.push(String((err as Error).message));
    exit(1);
  });
  if (opts.waitStarted === false) return proc;
  return started(proc, 'in-process relay');
}

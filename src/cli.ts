#!/usr/bin/env node
/** Command line: run the relay, check its configuration, inspect and repair the queue. */

import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, redactConfig } from './config/config.js';
import { createLogger } from './observability/logger.js';
import { Relay } from './relay.js';
import { hashPasswordCommand } from './auth/hash-password-command.js';
import { QUEUE_USAGE, UsageError, queueCommand } from './spool/queue-command.js';

const USAGE = `usage: smtp-graph-relay <command> [--config FILE]

commands:
  run            run the relay (SMTP listeners and delivery)
  check-config   validate the configuration and print it, secrets redacted
  hash-password  read a password from stdin, print its hash for users[].passwordHash
  queue ...      list, show, retry, delete and requeue messages (see below)

options:
  -c, --config FILE   YAML configuration (default: $RELAY_CONFIG, else built-in defaults + environment)

${QUEUE_USAGE}`;

function fail(message: string, code = 2): never {
  process.stderr.write(`smtp-graph-relay: ${message}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      dead: { type: 'boolean' },
      all: { type: 'boolean' },
      mailbox: { type: 'string' },
      json: { type: 'boolean' },
    },
    allowPositionals: true,
  });
  const command = positionals[0];
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return;
  }
  if (command === 'hash-password') return hashPasswordCommand();
  const configFile = values.config ?? process.env.RELAY_CONFIG;
  let cfg;
  try {
    cfg = loadConfig(configFile, process.env, { requireCredentials: command !== 'queue', requireMailboxes: command !== 'queue' });
  } catch (err) {
    if (err instanceof ConfigError) fail(`configuration error: ${err.message}`);
    throw err;
  }
  switch (command) {
    case 'check-config':
      process.stdout.write(`${JSON.stringify(redactConfig(cfg), null, 2)}\n`);
      return;
    case 'run':
      return run(cfg);
    case 'queue':
      try {
        process.stdout.write(await queueCommand(cfg, positionals.slice(1), values));
      } catch (err) {
        if (err instanceof UsageError) fail(err.message);
        fail((err as Error).message, 1);
      }
      return;
    default:
      fail(`unknown command "${command}"\n${USAGE}`);
  }
}

async function run(cfg: ReturnType<typeof loadConfig>): Promise<void> {
  const log = createLogger(cfg.log.level, undefined, cfg.log.flushIntervalMs);
  let relay: Relay;
  try {
    relay = new Relay(cfg, log);
  } catch (err) {
    if (err instanceof ConfigError) fail(`configuration error: ${err.message}`);
    throw err;
  }
  log.info({ event: 'config', config: redactConfig(cfg) }, 'configuration loaded');
  if (cfg.delivery.mode === 'capture') log.warn({ event: 'capture-mode', directory: cfg.delivery.captureDirectory }, 'capture mode: messages are written to the capture folder, NOT sent through Graph');
  const shutdown = (signal: string): void => {
    log.info({ event: 'signal', signal }, `received ${signal}`);
    relay.stop(cfg.shutdownGraceMs).then(
      () => log.flush(() => process.exit(0)),
      (err: unknown) => {
        log.error({ err }, 'error while stopping');
        log.flush(() => process.exit(1));
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  try {
    await relay.start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    log.fatal({ err }, 'relay failed to start');
    log.flush(() => fail(e.code === 'EADDRINUSE' || e.code === 'EACCES' ? `cannot listen: ${e.message}` : `failed to start: ${e.message}`, 1));
  }
}

main(process.argv.slice(2)).catch((err: unknown) => fail(String((err as Error)?.stack ?? err), 1));

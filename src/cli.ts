#!/usr/bin/env node
/** Command line: run the relay, check its configuration, inspect and repair the queue. */

import './cli/v8-flags.js'; // first: before any module compiles WebAssembly
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { type RelayConfig } from './config/config.js';
import { loadConfig, redactConfig } from './config/load.js';
import { createLogger } from './observability/logger.js';
import { createRelay } from './app/create-relay.js';
import type { Relay } from './app/relay.js';
import { hashPasswordCommand } from './cli/hash-password.js';
import { accountGraphConfig, accountKey, graphAccounts } from './config/accounts.js';
import { selectCredential } from './config/credentials.js';
import { Outbound } from './net/outbound.js';
import { QUEUE_USAGE, queueCommand, type QueueFlags } from './cli/queue.js';
import { testSend, tokenStep } from './cli/test-send.js';
import { HISTORY_USAGE, historyCommand, type HistoryFlags } from './cli/history.js';
import { pipeline } from 'node:stream/promises';
import { ConfigError, UsageError } from './errors.js';

const USAGE = `usage: smtp-graph-relay <command> [options]

commands:
  run            run the relay (SMTP listeners and delivery)
  check-config   validate the configuration and print it, secrets redacted (--strict: get a token for
                 every Graph account and print its roles and what they allow)
  hash-password  read a password from stdin, print its hash for users[].passwordHash
  queue ...      list, show, retry, delete, requeue and export messages (see below)
  history ...    find a message in the delivery history and tell its story (see below)
  test-send      send one message through Graph, step by step: --to ADDRESS [--from MAILBOX] [--account NAME]
  help           this text

options:
  -c, --config FILE   YAML configuration (default: $RELAY_CONFIG, else built-in defaults + environment)
  -h, --help          this text
  -V, --version       the version

${QUEUE_USAGE}
${HISTORY_USAGE}
exit status: 0 done, 1 failed or nothing to do, 2 usage or configuration error`;

type Options = NonNullable<ParseArgsConfig['options']>;
const COMMON: Options = {
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
};
/** Each command's own flags; any other flag is a usage error. */
const COMMANDS: Record<string, Options> = {
  run: {},
  'check-config': { strict: { type: 'boolean' } },
  'hash-password': {},
  queue: { dead: { type: 'boolean' }, all: { type: 'boolean' }, mailbox: { type: 'string' }, json: { type: 'boolean' }, out: { type: 'string', short: 'o' }, to: { type: 'string' } },
  history: Object.fromEntries([...['qid', 'message-id', 'sender', 'recipient', 'client', 'user', 'state', 'since', 'until', 'limit'].map((k) => [k, { type: 'string' }]), ['json', { type: 'boolean' }]]) as Options,
  'test-send': { to: { type: 'string' }, from: { type: 'string' }, account: { type: 'string' } },
  help: {},
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Exit 2 with one line and the usage: what tools admins know do for a mistyped command or flag. */
function usageError(message: string): never {
  process.stderr.write(`smtp-graph-relay: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function fail(message: string, code: 1 | 2): never {
  process.stderr.write(`smtp-graph-relay: ${message}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  // --help and --version work anywhere, before anything else is read.
  if (argv.includes('--version') || argv.includes('-V')) return void process.stdout.write(`smtp-graph-relay ${version()}\n`);
  // The command is the first argument that is not an option or an option's value.
  const all = Object.assign({}, COMMON, ...Object.values(COMMANDS)) as Options;
  const command = parseArgs({ args: argv, options: all, allowPositionals: true, strict: false }).positionals[0];
  if (argv.includes('--help') || argv.includes('-h') || command === undefined || command === 'help') return void process.stdout.write(`${USAGE}\n`);
  const own = COMMANDS[command];
  if (!own) usageError(`unknown command "${command}"`);
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: { ...COMMON, ...own }, allowPositionals: true, strict: true }));
  } catch (err) {
    const unknown = /Unknown option '([^']+)'/.exec((err as Error).message);
    usageError(unknown ? `unknown option "${unknown[1]}" for ${command}` : (err as Error).message.split('\n')[0]!);
  }
  const rest = positionals.slice(positionals.indexOf(command) + 1);
  if (command !== 'queue' && command !== 'history' && rest.length) usageError(`${command} takes no arguments (got "${rest.join(' ')}")`);
  if (command === 'hash-password') return hashPasswordCommand();
  const configFile = (values.config as string | undefined) ?? process.env.RELAY_CONFIG;
  if (command === 'test-send' && typeof values.to !== 'string') usageError('test-send needs --to ADDRESS');
  const purpose = { requireCredentials: command === 'run' || command === 'test-send', requireMailboxes: command === 'run' || command === 'check-config' };
  const cfg = config(() => loadConfig(configFile, process.env, purpose));
  switch (command) {
    case 'check-config':
      return checkConfig(cfg, values.strict === true);
    case 'run':
      return run(cfg);
    case 'queue':
      return queue(cfg, rest, values as QueueFlags);
    case 'history':
      return history(cfg, rest, values as HistoryFlags);
    case 'test-send':
      return void process.exit(await testSend(cfg, { to: values.to as string, ...(typeof values.from === 'string' ? { from: values.from } : {}), ...(typeof values.account === 'string' ? { account: values.account } : {}) }, (line) => process.stdout.write(`${line}\n`)));
  }
}

function config(load: () => RelayConfig): RelayConfig {
  try {
    return load();
  } catch (err) {
    if (err instanceof ConfigError) fail(`configuration error: ${err.message}`, 2);
    throw err;
  }
}

/**
 * Validates everything but the credential, which is often not at hand where the file is written: a warning
 * unless --strict, which also gets a token for every account and prints its roles (on stderr; stdout is the JSON).
 */
async function checkConfig(cfg: RelayConfig, strict: boolean): Promise<void> {
  const accounts = cfg.delivery.mode === 'graph' ? graphAccounts(cfg) : [];
  for (const a of accounts) {
    const sel = selectCredential(a, process.env);
    if (sel.ok) continue;
    const key = accountKey(cfg, a, sel.key);
    if (strict) fail(`configuration error: ${key}: ${sel.problem}`, 2);
    process.stderr.write(`smtp-graph-relay: warning: ${key}: ${sel.problem} (the relay will not start without it; --strict makes this an error)\n`);
  }
  process.stdout.write(`${JSON.stringify(redactConfig(cfg), null, 2)}\n`);
  if (!strict) return;
  let failed = false;
  for (const a of accounts) {
    const g = accountGraphConfig(cfg.graph, a);
    const net = Outbound.forGraph(g, 1);
    process.stderr.write(`account ${a.name}:\n`);
    const ok = await tokenStep(cfg, g, net, (line) => process.stderr.write(`  ${line}\n`));
    await net.close();
    failed ||= ok === null;
  }
  if (failed) process.exit(1);
}

async function queue(cfg: RelayConfig, args: string[], flags: QueueFlags): Promise<void> {
  try {
    const res = await queueCommand(cfg, args, flags);
    if (res.stream) await pipeline(res.stream, process.stdout, { end: false });
    process.stdout.write(res.text);
    if (!res.ok) process.exit(1);
  } catch (err) {
    if (err instanceof UsageError) usageError(err.message);
    fail((err as Error).message, 1);
  }
}

async function history(cfg: RelayConfig, args: string[], flags: HistoryFlags): Promise<void> {
  try {
    const res = await historyCommand(cfg, args, flags);
    process.stdout.write(res.text);
    if (!res.ok) process.exit(1);
  } catch (err) {
    if (err instanceof UsageError) usageError(err.message);
    fail((err as Error).message, 1);
  }
}

async function run(cfg: RelayConfig): Promise<void> {
  const log = createLogger(cfg.log.level, undefined, cfg.log.flushIntervalMs);
  let relay: Relay;
  try {
    relay = createRelay(cfg, { log });
  } catch (err) {
    if (err instanceof ConfigError) fail(`configuration error: ${err.message}`, 2);
    throw err;
  }
  log.info({ event: 'config', config: redactConfig(cfg) }, 'configuration loaded');
  if (cfg.delivery.mode === 'capture') log.warn({ event: 'capture-mode', directory: cfg.delivery.captureDirectory }, 'capture mode: messages are written to the capture folder, NOT sent through Graph');
  const shutdown = (signal: string): void => {
    log.info({ event: 'signal', signal }, `received ${signal}`);
    relay.stop(cfg.shutdownGraceMs).then(
      () => log.flush(() => process.exit(0)),
      (err: unknown) => {
        log.error({ event: 'stop-failed', err }, 'error while stopping');
        log.flush(() => process.exit(1));
      },
    );
  };
  // systemctl reload: the TLS certificate files and certificate credentials are read again now (also checked every reloadCheckInterval).
  process.on('SIGHUP', () => {
    log.info({ event: 'signal', signal: 'SIGHUP' }, 'received SIGHUP: reloading TLS certificates and certificate credentials');
    relay.reloadCertificates();
  });
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  try {
    await relay.start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    log.fatal({ event: 'start-failed', err }, 'relay failed to start');
    log.flush(() => fail(e.code === 'EADDRINUSE' || e.code === 'EACCES' ? `cannot listen: ${e.message}` : `failed to start: ${e.message}`, 1));
  }
}

main(process.argv.slice(2)).catch((err: unknown) => fail(String((err as Error)?.stack ?? err), 1));

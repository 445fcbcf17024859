/** Builds the configuration from one YAML file and the environment, checked whole before anything starts. */

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors.js';
import type { RelayConfig } from './config.js';
import { checkAccountReferences, defaultAccountOf, requireAccountCredentials } from './accounts.js';
import { readHistory } from './visibility.js';
import { readPolicy, readUsers } from './front-door.js';
import { readAccounts, readGraph } from './graph.js';
import { readFleet, redactRedisUrl } from './fleet.js';
import { redactProxy } from './proxy.js';
import { Reader, type Raw } from './reader.js';
import { applyListenerEnv, applyMailboxEnv, envFirst, readAdmin, readBounces, readDelivery, readLimits, readListeners, readLog, readMailboxes, readShutdownGrace } from './sections.js';

export interface BuildOptions {
  /** Queue tools only need the spool: they must work where the Graph credentials are not at hand. */
  requireCredentials?: boolean;
  /** Queue tools need no sender mapping either. */
  requireMailboxes?: boolean;
}

/** Builds and validates the configuration from parsed YAML (or {}) and the environment. */
export function buildConfig(rawYaml: unknown, env: NodeJS.ProcessEnv = process.env, baseDir = process.cwd(), opts: BuildOptions = {}): RelayConfig {
  if (rawYaml !== null && rawYaml !== undefined && (typeof rawYaml !== 'object' || Array.isArray(rawYaml))) {
    throw new ConfigError('(top level)', 'the configuration file must be a YAML mapping');
  }
  const root = new Reader((rawYaml ?? {}) as Raw, '');
  const hostname = envFirst(env.RELAY_HOSTNAME, root.str('hostname', 'smtp-graph-relay.localdomain'));
  if (!/^[a-z0-9.-]+$/i.test(hostname)) throw new ConfigError('hostname', `"${hostname}" is not a host name`);
  const users = readUsers(root);
  const listeners = readListeners(root, baseDir, users.length > 0);
  applyListenerEnv(listeners, env);
  const graph = readGraph(root.section('graph'), env, baseDir);
  const accounts = readAccounts(root, baseDir);
  const d = root.section('delivery');
  // Read first: it decides how big a message may be.
  const largeMessages = d.bool('largeMessages', true);
  const limits = readLimits(root.section('limits'), graph, largeMessages);
  const sp = root.section('spool');
  const spool = { directory: path.resolve(baseDir, envFirst(env.RELAY_SPOOL_DIR, sp.str('directory', './spool'))) };
  sp.done();
  const delivery = readDelivery(d, env, baseDir, largeMessages);
  const mailboxes = readMailboxes(root.section('mailboxes'));
  applyMailboxEnv(mailboxes, env);
  const shutdownGraceMs = readShutdownGrace(root, env);
  const bounces = readBounces(root.section('bounces'), env);
  const log = readLog(root.section('log'), env);
  const policy = readPolicy(root.section('policy'));
  const admin = readAdmin(root.section('admin'), env);
  const history = readHistory(root.section('history'), spool.directory, baseDir);
  const fleet = readFleet(root.section('fleet'), env);
  root.done();
  const defaultAccount = defaultAccountOf(graph, accounts);
  const cfg: RelayConfig = { hostname, listeners, limits, users, policy, spool, delivery, mailboxes, graph, accounts, defaultAccount, log, bounces, shutdownGraceMs, admin, history, fleet };
  checkAccountReferences(cfg);
  if (delivery.mode === 'graph' && opts.requireCredentials !== false) requireAccountCredentials(cfg, env);
  if (opts.requireMailboxes !== false) requireSomeMailbox(cfg);
  return cfg;
}

/**
 * No "accept anything" default: a sender the relay cannot map would get 250 and then fail at Graph (or, with
 * any domain allowed, Exchange refuses a From it cannot send as). So some way to a mailbox must be named.
 */
function requireSomeMailbox(cfg: RelayConfig): void {
  const m = cfg.mailboxes;
  const forced = [...cfg.users, ...cfg.policy.networks].some((x) => x.mailbox);
  if ((m.useEnvelopeSender && m.senderDomains.length > 0) || Object.keys(m.map).length > 0 || m.fallback || forced) return;
  const why = m.senderDomains.length > 0 ? 'mailboxes.useEnvelopeSender is off and nothing else is set' : 'none is set';
  throw new ConfigError(
    'mailboxes',
    `no sender can be given a mailbox to send as (${why}): set mailboxes.senderDomains (RELAY_SENDER_DOMAINS), mailboxes.map (RELAY_MAILBOX_MAP) or mailboxes.fallback (RELAY_FALLBACK_MAILBOX), or a users[]/policy.networks[] mailbox`,
  );
}

export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env, opts: BuildOptions = {}): RelayConfig {
  if (!file) return buildConfig({}, env, undefined, opts);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('--config', `cannot read "${file}": ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(file, `is not valid YAML: ${(err as Error).message}`);
  }
  return buildConfig(raw, env, undefined, opts);
}

/** The effective configuration with secrets replaced, for check-config and the start log line. */
export function redactConfig(cfg: RelayConfig): RelayConfig {
  const secret = <T extends { clientSecret: string | null }>(a: T): T => ({ ...a, clientSecret: a.clientSecret ? '[redacted]' : null });
  return {
    ...cfg,
    graph: { ...secret(cfg.graph), proxy: redactProxy(cfg.graph.proxy) },
    accounts: cfg.accounts.map(secret),
    users: cfg.users.map((u) => ({ ...u, passwordHash: '[redacted]' })),
    admin: { ...cfg.admin, auth: { ...cfg.admin.auth, token: cfg.admin.auth.token ? '[redacted]' : null, users: cfg.admin.auth.users.map((u) => ({ ...u, passwordHash: '[redacted]' })) } },
    fleet: { ...cfg.fleet, redisUrl: redactRedisUrl(cfg.fleet.redisUrl) },
  };
}

/** The sections of the configuration file, each read and checked, with the environment variables that override them. */

import path from 'node:path';
import { isIP } from 'node:net';
import { ConfigError } from '../errors.js';
import type { BounceConfig, DeliveryConfig, GraphConfig, ListenerConfig, MailboxConfig, RelayConfig, RetryConfig, RewriteFromMode, SentItemsMode } from './config.js';
import { ADDED_HEADER_ALLOWANCE, DEFAULT_MAX_LARGE_MESSAGE, MAX_LARGE_MESSAGE, maxRawForRequest } from './config.js';
import { readFrontDoorLimits, readListenerSecurity } from './front-door.js';
import { readAdminAuth } from './visibility.js';
import { Reader, validateCidr, type Raw } from './reader.js';
import { parseDuration } from './units.js';
import { readUnknownOutcome } from './unknown-outcome.js';

const ADDRESS_RE = /^[^\s@<>]+@[^\s@<>]+$/;

export function isAddress(s: string): boolean {
  return ADDRESS_RE.test(s);
}

export function readListeners(root: Reader, baseDir: string, hasUsers: boolean): ListenerConfig[] {
  const raw = root.list('listeners', [{}]);
  if (raw.length === 0) throw new ConfigError('listeners', 'at least one listener is needed');
  const names = new Set<string>();
  return raw.map((item, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new ConfigError(`listeners[${i}]`, 'must be a mapping');
    const r = new Reader(item as Raw, `listeners[${i}]`);
    const l: ListenerConfig = {
      name: r.str('name', i === 0 ? 'default' : `listener${i}`),
      host: r.str('host', '127.0.0.1'),
      port: r.int('port', 2525, 0, 65535),
      allowedNetworks: r.list('allowedNetworks', ['127.0.0.0/8', '::1/128']).map((c, j) => {
        const key = `listeners[${i}].allowedNetworks[${j}]`;
        if (typeof c !== 'string') throw new ConfigError(key, 'must be a string');
        validateCidr(key, c);
        return c;
      }),
      passthrough: r.bool('passthrough', false),
      greetingDelayMs: r.duration('greetingDelay', 0, 0, 60_000),
      account: r.str('account', null),
      ...readListenerSecurity(r, baseDir, hasUsers),
    };
    if (isIP(l.host) === 0 && l.host !== 'localhost') throw new ConfigError(r.key('host'), `"${l.host}" is not an IP address to listen on`);
    if (names.has(l.name)) throw new ConfigError(r.key('name'), `duplicate listener name "${l.name}"`);
    names.add(l.name);
    r.done();
    return l;
  });
}

function readRetry(r: Reader): RetryConfig {
  const schedule = r.list('schedule', ['30s', '1m', '2m', '5m', '10m', '20m', '30m', '1h']).map((v, i) => {
    const ms = parseDuration(v);
    if (ms === undefined || ms < 100) throw new ConfigError(`${r.key('schedule')}[${i}]`, `must be a duration of at least 100ms (got ${JSON.stringify(v)})`);
    return ms;
  });
  if (schedule.length === 0) throw new ConfigError(r.key('schedule'), 'needs at least one delay');
  const cfg: RetryConfig = {
    scheduleMs: schedule,
    maxQueueLifetimeMs: r.duration('maxQueueLifetime', 5 * 86_400_000, 1000),
    throttleBackoffBaseMs: r.duration('throttleBackoffBase', 2000, 100),
    throttleBackoffMaxMs: r.duration('throttleBackoffMax', 5 * 60_000, 100),
    mailboxBlockedDelayMs: r.duration('mailboxBlockedDelay', 60 * 60_000, 1000),
    outageProbeIntervalMs: r.duration('outageProbeInterval', 1000, 100, 10 * 60_000),
  };
  r.done();
  return cfg;
}

const REWRITE_FROM = ['mailbox', 'never'] as const;

export function readMailboxes(r: Reader): MailboxConfig {
  const map: Record<string, string> = {};
  const sentItems: Record<string, SentItemsMode> = {};
  const rewriteFromFor: Record<string, RewriteFromMode> = {};
  const accountFor: Record<string, string> = {};
  for (const [k, raw] of Object.entries(r.map('map'))) {
    const key = `${r.key('map')}.${k}`;
    const from = k.trim().toLowerCase();
    if (from !== '<>' && !isAddress(from) && !/^@[^\s@<>]+$/.test(from)) {
      throw new ConfigError(key, 'the key must be a sender address, "@domain" or "<>"');
    }
    // A value is a UPN, or { mailbox, sentItems, rewriteFrom } when the mapping overrides the defaults.
    let v: unknown = raw;
    if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
      const m = new Reader(raw as Raw, key);
      v = m.str('mailbox', '');
      const si = m.oneOf('sentItems', ['keep', 'discard'] as const, 'keep');
      if (m.raw('sentItems') !== undefined) sentItems[from] = si;
      const rf = m.oneOf('rewriteFrom', REWRITE_FROM, 'mailbox');
      if (m.raw('rewriteFrom') !== undefined) rewriteFromFor[from] = rf;
      const account = m.str('account', null);
      if (account !== null) accountFor[from] = account;
      m.done();
    }
    if (typeof v !== 'string' || !isAddress(v)) throw new ConfigError(key, `the mailbox must be a UPN such as scans@contoso.com (got ${JSON.stringify(v)})`);
    map[from] = v;
  }
  const fallback = r.str('fallback', null);
  if (fallback !== null && !isAddress(fallback)) throw new ConfigError(r.key('fallback'), `must be a mailbox UPN such as noreply@contoso.com (got "${fallback}")`);
  const senderDomains = r.list('senderDomains', []).map((d, i) => domainOrStar(`${r.key('senderDomains')}[${i}]`, d));
  const cfg: MailboxConfig = {
    map,
    sentItems,
    rewriteFromFor,
    accountFor,
    rewriteFrom: r.oneOf('rewriteFrom', REWRITE_FROM, 'mailbox'),
    replyToOriginalFrom: r.bool('replyToOriginalFrom', true),
    useEnvelopeSender: r.bool('useEnvelopeSender', true),
    senderDomains,
    fallback,
  };
  r.done();
  return cfg;
}

export function domainOrStar(key: string, d: unknown): string {
  if (typeof d !== 'string' || !/^(\*|[a-z0-9.-]+)$/i.test(d)) throw new ConfigError(key, `must be a domain name, or "*" for any domain (got ${JSON.stringify(d)})`);
  return d.toLowerCase();
}

/** RELAY_MAILBOX_MAP: "sender=mailbox" pairs, comma or space separated; sender is an address, "@domain" or "<>". */
export function mailboxMapFromEnv(value: string): Record<string, string> {
  const map: Record<string, string> = {};
  for (const pair of value.split(/[\s,]+/).filter(Boolean)) {
    const eq = pair.lastIndexOf('=');
    const from = pair.slice(0, eq).trim().toLowerCase();
    const to = pair.slice(eq + 1).trim();
    if (eq < 1 || (from !== '<>' && !isAddress(from) && !/^@[^\s@<>]+$/.test(from)) || !isAddress(to)) {
      throw new ConfigError('RELAY_MAILBOX_MAP', `"${pair}" is not sender=mailbox (e.g. scanner@printer.local=scans@contoso.com or @printer.local=scans@contoso.com)`);
    }
    map[from] = to;
  }
  return map;
}

/**
 * An environment variable overrides a file setting. Both arguments are evaluated, so the file's key is
 * still read and validated (and never reported as unknown) when the environment overrides it.
 */
export function envFirst<T>(fromEnv: T | undefined, fromFile: T): T {
  return fromEnv ? fromEnv : fromFile;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;


/** RELAY_SMTP_HOST, RELAY_SMTP_PORT and RELAY_ALLOWED_NETWORKS set the first listener (RELAY_ALLOWED_NETWORKS replaces its list). */
export function applyListenerEnv(listeners: ListenerConfig[], env: NodeJS.ProcessEnv): void {
  const first = listeners[0]!;
  if (env.RELAY_SMTP_PORT) first.port = portFromEnv(env, 'RELAY_SMTP_PORT');
  if (env.RELAY_SMTP_HOST) first.host = env.RELAY_SMTP_HOST;
  if (env.RELAY_ALLOWED_NETWORKS) {
    first.allowedNetworks = env.RELAY_ALLOWED_NETWORKS.split(/[\s,]+/).filter(Boolean);
    first.allowedNetworks.forEach((c) => validateCidr('RELAY_ALLOWED_NETWORKS', c));
  }
}

function portFromEnv(env: NodeJS.ProcessEnv, name: string): number {
  const port = Number(env[name]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(name, `must be a port number (got "${env[name]}")`);
  return port;
}

/** The limits: how big a message may be depends on whether the large-message route is on. */
export function readLimits(lim: Reader, graph: GraphConfig, largeMessages: boolean): RelayConfig['limits'] {
  const maxForMime = maxRawForRequest(graph.maxRequestBytes) - ADDED_HEADER_ALLOWANCE;
  const limits = {
    maxMessageSize: lim.size('maxMessageSize', largeMessages ? DEFAULT_MAX_LARGE_MESSAGE : maxForMime, 1024, largeMessages ? MAX_LARGE_MESSAGE : maxForMime),
    maxRecipients: lim.int('maxRecipients', 500, 1, 500),
    maxReceivedHeaders: lim.int('maxReceivedHeaders', 50, 1, 1000),
    maxHeaderSize: lim.size('maxHeaderSize', 256 * 1024, 4 * 1024, 1024 * 1024),
    ...readFrontDoorLimits(lim),
  };
  lim.done();
  return limits;
}

export function readDelivery(d: Reader, env: NodeJS.ProcessEnv, baseDir: string, largeMessages: boolean): DeliveryConfig {
  const delivery: DeliveryConfig = {
    mode: envFirst(env.RELAY_DELIVERY as DeliveryConfig['mode'] | undefined, d.oneOf('mode', ['graph', 'capture'] as const, 'graph')),
    captureDirectory: path.resolve(baseDir, envFirst(env.RELAY_CAPTURE_DIR, d.str('captureDirectory', './capture'))),
    headerOnlyRecipients: d.oneOf('headerOnlyRecipients', ['deliver', 'reject', 'envelope'] as const, 'deliver'),
    perMailboxConcurrency: d.int('perMailboxConcurrency', 4, 1, 16),
    activeLimit: d.int('activeLimit', 20_000, 100, 10_000_000),
    globalConcurrency: d.int('globalConcurrency', 128, 1, 1024),
    messagesPerMinute: d.int('messagesPerMinute', 0, 0, 10_000),
    retry: readRetry(d.section('retry')),
    largeMessages,
    sentItems: d.oneOf('sentItems', ['keep', 'discard'] as const, 'keep'),
    unknownOutcome: readUnknownOutcome(d.section('unknownOutcome')),
  };
  if (delivery.mode !== 'graph' && delivery.mode !== 'capture') throw new ConfigError('RELAY_DELIVERY', `must be graph or capture (got "${delivery.mode}")`);
  d.done();
  return delivery;
}

/** RELAY_FALLBACK_MAILBOX and RELAY_SENDER_DOMAINS replace the file's; RELAY_MAILBOX_MAP adds to its map. */
export function applyMailboxEnv(mailboxes: MailboxConfig, env: NodeJS.ProcessEnv): void {
  if (env.RELAY_FALLBACK_MAILBOX) {
    if (!isAddress(env.RELAY_FALLBACK_MAILBOX)) throw new ConfigError('RELAY_FALLBACK_MAILBOX', `must be a mailbox UPN (got "${env.RELAY_FALLBACK_MAILBOX}")`);
    mailboxes.fallback = env.RELAY_FALLBACK_MAILBOX;
  }
  if (env.RELAY_SENDER_DOMAINS) mailboxes.senderDomains = env.RELAY_SENDER_DOMAINS.split(/[\s,]+/).filter(Boolean).map((d) => domainOrStar('RELAY_SENDER_DOMAINS', d));
  if (env.RELAY_MAILBOX_MAP) Object.assign(mailboxes.map, mailboxMapFromEnv(env.RELAY_MAILBOX_MAP));
}

/** Containers size the drain next to their stop timeout (compose stop_grace_period, terminationGracePeriodSeconds). */
export function readShutdownGrace(root: Reader, env: NodeJS.ProcessEnv): number {
  const fromFile = root.duration('shutdownGrace', 30_000, 0, 3_600_000);
  if (!env.RELAY_SHUTDOWN_GRACE_MS) return fromFile;
  const ms = Number(env.RELAY_SHUTDOWN_GRACE_MS);
  if (!Number.isInteger(ms) || ms < 0 || ms > 3_600_000) throw new ConfigError('RELAY_SHUTDOWN_GRACE_MS', `must be milliseconds from 0 to 3600000 (got "${env.RELAY_SHUTDOWN_GRACE_MS}")`);
  return ms;
}

export function readBounces(b: Reader, env: NodeJS.ProcessEnv): BounceConfig {
  const bounces: BounceConfig = {
    postmaster: envFirst(env.RELAY_POSTMASTER, b.str('postmaster', null)),
    delayWarningAfterMs: b.raw('delayWarningAfter') === undefined || b.raw('delayWarningAfter') === null ? null : b.duration('delayWarningAfter', 0, 60_000),
  };
  if (bounces.postmaster !== null && !isAddress(bounces.postmaster)) throw new ConfigError('bounces.postmaster', `must be a mailbox UPN such as postmaster@contoso.com (got "${bounces.postmaster}")`);
  b.done();
  return bounces;
}

export function readLog(lg: Reader, env: NodeJS.ProcessEnv): RelayConfig['log'] {
  const log = { level: envFirst(env.RELAY_LOG_LEVEL as RelayConfig['log']['level'] | undefined, lg.oneOf('level', LOG_LEVELS, 'info')), flushIntervalMs: lg.duration('flushInterval', 200, 0, 10_000) };
  if (!(LOG_LEVELS as readonly string[]).includes(log.level)) throw new ConfigError('RELAY_LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')} (got "${log.level}")`);
  lg.done();
  return log;
}

export function readAdmin(ad: Reader, env: NodeJS.ProcessEnv): RelayConfig['admin'] {
  const admin = { enabled: ad.bool('enabled', true), host: ad.str('host', '127.0.0.1'), port: ad.int('port', 8025, 0, 65535), auth: readAdminAuth(ad.section('auth'), env) };
  if (env.RELAY_ADMIN_PORT) admin.port = portFromEnv(env, 'RELAY_ADMIN_PORT');
  if (isIP(admin.host) === 0 && admin.host !== 'localhost') throw new ConfigError(ad.key('host'), `"${admin.host}" is not an IP address to listen on`);
  ad.done();
  return admin;
}

/** The relay's configuration: one YAML file plus environment variables, validated at start. */

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { CLOUDS, CLOUD_NAMES, type CloudName } from './clouds.js';
import { parseDuration } from './units.js';
import { Reader, validateCidr, type Raw } from './reader.js';
import { readFrontDoorLimits, readListenerSecurity, readPolicy, readUsers, type FrontDoorLimits, type ListenerSecurity, type PolicyConfig, type UserConfig } from './front-door.js';
import { CREDENTIAL_SETTINGS, selectCredential, type CredentialSetting } from './credentials.js';
import { ConfigError } from '../errors.js';

/** A listener; its TLS, AUTH and PROXY settings are described in src/config/front-door.ts. */
export interface ListenerConfig extends ListenerSecurity {
  name: string;
  host: string;
  port: number;
  /** CIDR ranges whose clients may send through this listener. */
  allowedNetworks: string[];
  /** No spool: Graph is called before the reply to DATA, and its answer becomes the SMTP answer. */
  passthrough: boolean;
}

export interface RetryConfig {
  /** Delays between attempts; the last one repeats until maxQueueLifetime. */
  scheduleMs: number[];
  maxQueueLifetimeMs: number;
  /** Backoff used for 429/503 without Retry-After: base doubles per consecutive throttle, capped. */
  throttleBackoffBaseMs: number;
  throttleBackoffMaxMs: number;
  /** Long pause for mailbox-level blocks (quota exceeded, submission blocked). */
  mailboxBlockedDelayMs: number;
}

export interface DeliveryConfig {
  mode: 'graph' | 'capture';
  captureDirectory: string;
  /**
   * A To/Cc/Bcc address that is not an envelope recipient: `deliver` (Graph delivers to it, as to every
   * header recipient), `reject` (550 at DATA) or `envelope` (removed from the headers, so Graph delivers to
   * exactly the envelope recipients). Recipient policy applies to every address Graph delivers to, whichever.
   */
  headerOnlyRecipients: HeaderOnlyMode;
  perMailboxConcurrency: number;
  globalConcurrency: number;
  /** Optional pacing per mailbox, messages per minute; 0 = off. */
  messagesPerMinute: number;
  retry: RetryConfig;
  /** Messages too big for one sendMail request go through a draft and attachment uploads (needs Mail.ReadWrite). */
  largeMessages: boolean;
  /** keep: Graph saves a copy in Sent Items (MIME sendMail); discard: JSON sendMail with saveToSentItems false. */
  sentItems: SentItemsMode;
}

export type SentItemsMode = 'keep' | 'discard';
export type HeaderOnlyMode = 'deliver' | 'reject' | 'envelope';
/** `mailbox`: a From (or Sender) that is not the sending mailbox becomes the mailbox; `never`: left alone (Send As granted). */
export type RewriteFromMode = 'mailbox' | 'never';

export interface MailboxConfig {
  /** Sender address or "@domain" (lower-case) → mailbox UPN. "<>" maps the null sender. */
  map: Record<string, string>;
  /** Per-mapping Sent Items override, same keys as `map`; absent keys use delivery.sentItems. */
  sentItems: Record<string, SentItemsMode>;
  /** Per-mapping From rewrite override, same keys as `map`; absent keys use `rewriteFrom`. */
  rewriteFromFor: Record<string, RewriteFromMode>;
  rewriteFrom: RewriteFromMode;
  /** On a From rewrite, the original From goes into Reply-To when the message has none. */
  replyToOriginalFrom: boolean;
  useEnvelopeSender: boolean;
  /** Domains whose envelope senders send as themselves; empty: none; "*": any (explicit, never the default). */
  senderDomains: string[];
  fallback: string | null;
}

export interface GraphConfig {
  cloud: CloudName;
  graphUrl: string;
  authorityHost: string;
  tenantId: string | null;
  clientId: string | null;
  clientSecret: string | null;
  clientCertificatePath: string | null;
  /** Which credential gets Graph tokens; `auto` lets the inputs present decide (see src/auth/credential-selection.ts). */
  credential: CredentialSetting;
  /** Workload identity federation: a projected service-account token, read afresh for every token request. */
  federatedTokenFile: string | null;
  maxRequestBytes: number;
  /** Graph's attachment upload budget per mailbox (150 MB per 5 minutes); the large route defers instead of exceeding it. */
  uploadBudgetBytes: number;
  uploadBudgetWindowMs: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
}

/** Delivery status notifications to senders (src/delivery/bounce.ts). */
export interface BounceConfig {
  /** Mailbox (UPN) that sends notifications; null = no bounces, failed mail stays in dead/ only. */
  postmaster: string | null;
  /** Send a "delayed" notice once a message has waited this long (null = never). */
  delayWarningAfterMs: number | null;
}

export interface RelayConfig {
  hostname: string;
  listeners: ListenerConfig[];
  limits: {
    maxMessageSize: number;
    maxRecipients: number;
    maxReceivedHeaders: number;
    /** The whole header section as Graph gets it (the relay's own fields included); Exchange Online refuses more than 256 KB. */
    maxHeaderSize: number;
  } & FrontDoorLimits;
  /** SMTP AUTH users and sender policy (src/config/front-door.ts). */
  users: UserConfig[];
  policy: PolicyConfig;
  spool: { directory: string };
  delivery: DeliveryConfig;
  mailboxes: MailboxConfig;
  graph: GraphConfig;
  log: {
    level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
    /** Lines are written in batches at most this far apart (or per 4 KB); 0 writes each line at once. */
    flushIntervalMs: number;
  };
  /** Delivery status notifications to senders (src/delivery/bounce.ts). */
  bounces: BounceConfig;
  /** How long a SIGTERM waits for SMTP transactions and Graph requests under way. */
  shutdownGraceMs: number;
  /** Health, readiness and Prometheus metrics over HTTP (src/observability/admin.ts). */
  admin: { enabled: boolean; host: string; port: number };
}


/** Graph takes at most 4 MB per request; base64 makes 3 raw bytes 4. */
export function maxRawForRequest(maxRequestBytes: number): number {
  return Math.floor(maxRequestBytes / 4) * 3;
}

/** Room left in a MIME sendMail request for the headers the relay adds (Received, Bcc). */
export const ADDED_HEADER_ALLOWANCE = 64 * 1024;

const DEFAULT_MAX_REQUEST_BYTES = 4_000_000;

const MB = 1024 * 1024;
/** Exchange Online's default maximum message size, and the most Graph's large-message route can carry. */
export const DEFAULT_MAX_LARGE_MESSAGE = 35 * MB;
export const MAX_LARGE_MESSAGE = 150 * MB;

const ADDRESS_RE = /^[^\s@<>]+@[^\s@<>]+$/;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DOMAIN_NAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;

function isAddress(s: string): boolean {
  return ADDRESS_RE.test(s);
}


function readListeners(root: Reader, baseDir: string, hasUsers: boolean): ListenerConfig[] {
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
  };
  r.done();
  return cfg;
}

const REWRITE_FROM = ['mailbox', 'never'] as const;

function readMailboxes(r: Reader): MailboxConfig {
  const map: Record<string, string> = {};
  const sentItems: Record<string, SentItemsMode> = {};
  const rewriteFromFor: Record<string, RewriteFromMode> = {};
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
    rewriteFrom: r.oneOf('rewriteFrom', REWRITE_FROM, 'mailbox'),
    replyToOriginalFrom: r.bool('replyToOriginalFrom', true),
    useEnvelopeSender: r.bool('useEnvelopeSender', true),
    senderDomains,
    fallback,
  };
  r.done();
  return cfg;
}

function domainOrStar(key: string, d: unknown): string {
  if (typeof d !== 'string' || !/^(\*|[a-z0-9.-]+)$/i.test(d)) throw new ConfigError(key, `must be a domain name, or "*" for any domain (got ${JSON.stringify(d)})`);
  return d.toLowerCase();
}

/** RELAY_MAILBOX_MAP: "sender=mailbox" pairs, comma or space separated; sender is an address, "@domain" or "<>". */
function mailboxMapFromEnv(value: string): Record<string, string> {
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

function readGraph(r: Reader, env: NodeJS.ProcessEnv, baseDir: string): GraphConfig {
  const cloud = r.oneOf('cloud', CLOUD_NAMES, 'global');
  const endpoints = CLOUDS[cloud];
  const url = (key: string, v: string): string => {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      throw new ConfigError(key, `"${v}" is not a URL`);
    }
    if (u.protocol !== 'https:') throw new ConfigError(key, `must be an https:// URL (got "${v}")`);
    return u.origin;
  };
  const cfg: GraphConfig = {
    cloud,
    graphUrl: url(r.key('graphUrl'), envFirst(env.RELAY_GRAPH_URL, r.str('graphUrl', endpoints.graphUrl))),
    authorityHost: url(r.key('authorityHost'), envFirst(env.AZURE_AUTHORITY_HOST, r.str('authorityHost', endpoints.authorityHost))),
    tenantId: envFirst(env.AZURE_TENANT_ID, r.str('tenantId', null)),
    clientId: envFirst(env.AZURE_CLIENT_ID, r.str('clientId', null)),
    clientSecret: envFirst(secret(env, 'AZURE_CLIENT_SECRET'), r.str('clientSecret', null)),
    clientCertificatePath: envFirst(env.AZURE_CLIENT_CERTIFICATE_PATH, r.str('clientCertificatePath', null)),
    credential: r.oneOf('credential', CREDENTIAL_SETTINGS, 'auto'),
    // Read the key before the variable so that a file setting overridden by the environment is not an "unknown setting".
    federatedTokenFile: envFirst(env.AZURE_FEDERATED_TOKEN_FILE, r.str('federatedTokenFile', null)),
    maxRequestBytes: r.size('maxRequestBytes', DEFAULT_MAX_REQUEST_BYTES, 64 * 1024, 4 * 1024 * 1024),
    uploadBudgetBytes: r.size('uploadBudget', MAX_LARGE_MESSAGE, 1 * MB, 10 * MAX_LARGE_MESSAGE),
    uploadBudgetWindowMs: r.duration('uploadBudgetWindow', 5 * 60_000, 1000),
    connectTimeoutMs: r.duration('connectTimeout', 10_000, 100),
    headersTimeoutMs: r.duration('headersTimeout', 60_000, 100),
    bodyTimeoutMs: r.duration('bodyTimeout', 60_000, 100),
  };
  if (env.RELAY_CREDENTIAL) {
    if (!(CREDENTIAL_SETTINGS as readonly string[]).includes(env.RELAY_CREDENTIAL)) throw new ConfigError('RELAY_CREDENTIAL', `must be one of ${CREDENTIAL_SETTINGS.join(', ')} (got "${env.RELAY_CREDENTIAL}")`);
    cfg.credential = env.RELAY_CREDENTIAL as CredentialSetting;
  }
  // A placeholder left in a deployment template fails here, naming itself, not later at Entra ID.
  if (cfg.tenantId !== null && !GUID.test(cfg.tenantId) && !DOMAIN_NAME.test(cfg.tenantId)) {
    throw new ConfigError(env.AZURE_TENANT_ID ? 'AZURE_TENANT_ID' : r.key('tenantId'), `"${cfg.tenantId}" is not a tenant: use the Directory (tenant) ID, a GUID, or a verified domain such as contoso.onmicrosoft.com`);
  }
  if (cfg.clientId !== null && !GUID.test(cfg.clientId)) {
    throw new ConfigError(env.AZURE_CLIENT_ID ? 'AZURE_CLIENT_ID' : r.key('clientId'), `"${cfg.clientId}" is not a client id: use the app registration's Application (client) ID, a GUID`);
  }
  if (cfg.clientCertificatePath) cfg.clientCertificatePath = path.resolve(baseDir, cfg.clientCertificatePath);
  if (cfg.federatedTokenFile) cfg.federatedTokenFile = path.resolve(baseDir, cfg.federatedTokenFile);
  r.done();
  return cfg;
}

/**
 * An environment variable overrides a file setting. Both arguments are evaluated, so the file's key is
 * still read and validated (and never reported as unknown) when the environment overrides it.
 */
function envFirst<T>(fromEnv: T | undefined, fromFile: T): T {
  return fromEnv ? fromEnv : fromFile;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/** A secret from VAR, or from the file named by VAR_FILE (Docker and Kubernetes secrets). */
function secret(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const file = env[`${name}_FILE`];
  if (file) {
    try {
      return readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(`${name}_FILE`, `cannot read "${file}": ${(err as Error).message}`);
    }
  }
  return env[name] || undefined;
}

/** Builds and validates the configuration from parsed YAML (or {}) and the environment. */
export interface BuildOptions {
  /** Queue tools only need the spool: they must work where the Graph credentials are not at hand. */
  requireCredentials?: boolean;
  /** Queue tools need no sender mapping either. */
  requireMailboxes?: boolean;
}

export function buildConfig(rawYaml: unknown, env: NodeJS.ProcessEnv = process.env, baseDir = process.cwd(), opts: BuildOptions = {}): RelayConfig {
  if (rawYaml !== null && rawYaml !== undefined && (typeof rawYaml !== 'object' || Array.isArray(rawYaml))) {
    throw new ConfigError('(top level)', 'the configuration file must be a YAML mapping');
  }
  const root = new Reader((rawYaml ?? {}) as Raw, '');
  const hostname = envFirst(env.RELAY_HOSTNAME, root.str('hostname', 'smtp-graph-relay.localdomain'));
  if (!/^[a-z0-9.-]+$/i.test(hostname)) throw new ConfigError('hostname', `"${hostname}" is not a host name`);

  const users = readUsers(root);
  const listeners = readListeners(root, baseDir, users.length > 0);
  if (env.RELAY_SMTP_PORT) {
    const port = Number(env.RELAY_SMTP_PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError('RELAY_SMTP_PORT', `must be a port number (got "${env.RELAY_SMTP_PORT}")`);
    listeners[0]!.port = port;
  }
  if (env.RELAY_SMTP_HOST) listeners[0]!.host = env.RELAY_SMTP_HOST;
  if (env.RELAY_ALLOWED_NETWORKS) {
    listeners[0]!.allowedNetworks = env.RELAY_ALLOWED_NETWORKS.split(/[\s,]+/).filter(Boolean);
    listeners[0]!.allowedNetworks.forEach((c) => validateCidr('RELAY_ALLOWED_NETWORKS', c));
  }

  const graph = readGraph(root.section('graph'), env, baseDir);
  const maxForMime = maxRawForRequest(graph.maxRequestBytes) - ADDED_HEADER_ALLOWANCE;
  const d = root.section('delivery');
  // Read first: it decides how big a message may be.
  const largeMessages = d.bool('largeMessages', true);
  const maxSize = largeMessages ? MAX_LARGE_MESSAGE : maxForMime;
  const lim = root.section('limits');
  const limits = {
    maxMessageSize: lim.size('maxMessageSize', largeMessages ? DEFAULT_MAX_LARGE_MESSAGE : maxForMime, 1024, maxSize),
    maxRecipients: lim.int('maxRecipients', 500, 1, 500),
    maxReceivedHeaders: lim.int('maxReceivedHeaders', 50, 1, 1000),
    maxHeaderSize: lim.size('maxHeaderSize', 256 * 1024, 4 * 1024, 1024 * 1024),
    ...readFrontDoorLimits(lim),
  };
  lim.done();

  const sp = root.section('spool');
  const spool = { directory: path.resolve(baseDir, envFirst(env.RELAY_SPOOL_DIR, sp.str('directory', './spool'))) };
  sp.done();

  const delivery: DeliveryConfig = {
    mode: envFirst(env.RELAY_DELIVERY as DeliveryConfig['mode'] | undefined, d.oneOf('mode', ['graph', 'capture'] as const, 'graph')),
    captureDirectory: path.resolve(baseDir, envFirst(env.RELAY_CAPTURE_DIR, d.str('captureDirectory', './capture'))),
    headerOnlyRecipients: d.oneOf('headerOnlyRecipients', ['deliver', 'reject', 'envelope'] as const, 'deliver'),
    perMailboxConcurrency: d.int('perMailboxConcurrency', 4, 1, 16),
    globalConcurrency: d.int('globalConcurrency', 128, 1, 1024),
    messagesPerMinute: d.int('messagesPerMinute', 0, 0, 10_000),
    retry: readRetry(d.section('retry')),
    largeMessages,
    sentItems: d.oneOf('sentItems', ['keep', 'discard'] as const, 'keep'),
  };
  if (delivery.mode !== 'graph' && delivery.mode !== 'capture') throw new ConfigError('RELAY_DELIVERY', `must be graph or capture (got "${delivery.mode}")`);
  d.done();

  const mailboxes = readMailboxes(root.section('mailboxes'));
  if (env.RELAY_FALLBACK_MAILBOX) {
    if (!isAddress(env.RELAY_FALLBACK_MAILBOX)) throw new ConfigError('RELAY_FALLBACK_MAILBOX', `must be a mailbox UPN (got "${env.RELAY_FALLBACK_MAILBOX}")`);
    mailboxes.fallback = env.RELAY_FALLBACK_MAILBOX;
  }
  if (env.RELAY_SENDER_DOMAINS) mailboxes.senderDomains = env.RELAY_SENDER_DOMAINS.split(/[\s,]+/).filter(Boolean).map((d) => domainOrStar('RELAY_SENDER_DOMAINS', d));
  if (env.RELAY_MAILBOX_MAP) Object.assign(mailboxes.map, mailboxMapFromEnv(env.RELAY_MAILBOX_MAP));

  let shutdownGraceMs = root.duration('shutdownGrace', 30_000, 0, 3_600_000);
  // Containers size the drain next to their stop timeout (compose stop_grace_period, terminationGracePeriodSeconds).
  if (env.RELAY_SHUTDOWN_GRACE_MS) {
    const ms = Number(env.RELAY_SHUTDOWN_GRACE_MS);
    if (!Number.isInteger(ms) || ms < 0 || ms > 3_600_000) throw new ConfigError('RELAY_SHUTDOWN_GRACE_MS', `must be milliseconds from 0 to 3600000 (got "${env.RELAY_SHUTDOWN_GRACE_MS}")`);
    shutdownGraceMs = ms;
  }
  const b = root.section('bounces');
  const bounces: BounceConfig = {
    postmaster: envFirst(env.RELAY_POSTMASTER, b.str('postmaster', null)),
    delayWarningAfterMs: b.raw('delayWarningAfter') === undefined || b.raw('delayWarningAfter') === null ? null : b.duration('delayWarningAfter', 0, 60_000),
  };
  if (bounces.postmaster !== null && !isAddress(bounces.postmaster)) throw new ConfigError('bounces.postmaster', `must be a mailbox UPN such as postmaster@contoso.com (got "${bounces.postmaster}")`);
  b.done();

  const lg = root.section('log');
  const log = { level: envFirst(env.RELAY_LOG_LEVEL as RelayConfig['log']['level'] | undefined, lg.oneOf('level', LOG_LEVELS, 'info')), flushIntervalMs: lg.duration('flushInterval', 200, 0, 10_000) };
  if (!(LOG_LEVELS as readonly string[]).includes(log.level)) throw new ConfigError('RELAY_LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')} (got "${log.level}")`);
  lg.done();
  const policy = readPolicy(root.section('policy'));

  const ad = root.section('admin');
  const admin = { enabled: ad.bool('enabled', true), host: ad.str('host', '127.0.0.1'), port: ad.int('port', 8025, 0, 65535) };
  if (env.RELAY_ADMIN_PORT) {
    const port = Number(env.RELAY_ADMIN_PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError('RELAY_ADMIN_PORT', `must be a port number (got "${env.RELAY_ADMIN_PORT}")`);
    admin.port = port;
  }
  if (isIP(admin.host) === 0 && admin.host !== 'localhost') throw new ConfigError(ad.key('host'), `"${admin.host}" is not an IP address to listen on`);
  ad.done();
  root.done();

  const cfg: RelayConfig = { hostname, listeners, limits, users, policy, spool, delivery, mailboxes, graph, log, bounces, shutdownGraceMs, admin };
  if (delivery.mode === 'graph' && opts.requireCredentials !== false) requireCredentials(cfg.graph, env);
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

/** Production mode never falls back to capture: missing credentials stop the relay here. */
function requireCredentials(g: GraphConfig, env: NodeJS.ProcessEnv): void {
  const sel = selectCredential(g, env);
  if (!sel.ok) throw new ConfigError(sel.key, sel.problem);
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
  return { ...cfg, graph: { ...cfg.graph, clientSecret: cfg.graph.clientSecret ? '[redacted]' : null }, users: cfg.users.map((u) => ({ ...u, passwordHash: '[redacted]' })) };
}

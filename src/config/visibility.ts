/** The settings of what an administrator sees: the delivery history, the device view, and who may use the status page. */

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { parsePasswordHash } from './password-hash.js';
import { Reader } from './reader.js';

export interface HistoryConfig {
  /** Off: no history database, no device view; the status page shows the queue only. */
  enabled: boolean;
  /** The SQLite file (default: history.db in the spool folder, so it lives on the spool's volume). */
  file: string;
  /** Messages older than this are removed (hourly and at start). */
  retentionMs: number;
  /** The file is kept under this size by removing the oldest messages first. */
  maxBytes: number;
  /** Subjects are personal data: kept only when this allows it. */
  storeSubjects: boolean;
  /** A device is "silent" when it has not sent for silenceFactor × its usual gap, and at least minSilence. */
  silenceFactor: number;
  minSilenceMs: number;
  /** Exchange's message trace (Graph, ExchangeMessageTrace.Read.All) is looked up when someone opens a message. */
  messageTrace: boolean;
}

export interface AdminUser {
  username: string;
  /** scrypt hash from `smtp-graph-relay hash-password`. */
  passwordHash: string;
}

export interface AdminAuthConfig {
  /** A bearer token (from tokenFile or RELAY_ADMIN_TOKEN); null: none. */
  token: string | null;
  users: AdminUser[];
  /** /metrics needs the bearer token too (Prometheus: authorization.credentials_file). Probes never do. */
  protectMetrics: boolean;
}

export interface AdminConfig {
  enabled: boolean;
  host: string;
  port: number;
  auth: AdminAuthConfig;
}

export function readHistory(h: Reader, spoolDir: string, baseDir: string): HistoryConfig {
  const file = h.str('file', null);
  const cfg: HistoryConfig = {
    enabled: h.bool('enabled', true),
    file: file ? path.resolve(baseDir, file) : path.join(spoolDir, 'history.db'),
    retentionMs: h.duration('retention', 30 * 86_400_000, 3_600_000),
    maxBytes: h.size('maxSize', 1024 ** 3, 1024 ** 2, 1024 ** 4),
    storeSubjects: h.bool('storeSubjects', false),
    silenceFactor: 0,
    minSilenceMs: 0,
    messageTrace: h.bool('messageTrace', true),
  };
  const d = h.section('devices');
  cfg.silenceFactor = d.int('silenceFactor', 4, 1, 1000);
  cfg.minSilenceMs = d.duration('minSilence', 3_600_000, 60_000);
  d.done();
  h.done();
  return cfg;
}

/** Loopback addresses: the page needs no login there unless one is configured (today's default). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

export function readAdminAuth(a: Reader, env: NodeJS.ProcessEnv): AdminAuthConfig {
  const tokenFile = a.str('tokenFile', null) ?? env.RELAY_ADMIN_TOKEN_FILE ?? null;
  let token = env.RELAY_ADMIN_TOKEN || null;
  if (!token && tokenFile) {
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(a.key('tokenFile'), `cannot read "${tokenFile}": ${(err as Error).message}`);
    }
  }
  if (token !== null && token.length < 24) throw new ConfigError(env.RELAY_ADMIN_TOKEN ? 'RELAY_ADMIN_TOKEN' : a.key('tokenFile'), 'the admin token must be at least 24 characters (e.g. `openssl rand -hex 32`)');
  const users = a.list('users', []).map((u, i) => {
    const key = `${a.key('users')}[${i}]`;
    if (typeof u !== 'object' || u === null || Array.isArray(u)) throw new ConfigError(key, 'must be a mapping with username and passwordHash');
    const r = new Reader(u as Record<string, unknown>, key);
    const user = { username: r.str('username', ''), passwordHash: r.str('passwordHash', '') };
    if (!user.username) throw new ConfigError(r.key('username'), 'is required');
    try {
      parsePasswordHash(user.passwordHash);
    } catch (err) {
      throw new ConfigError(r.key('passwordHash'), (err as Error).message);
    }
    r.done();
    return user;
  });
  const auth = { token, users, protectMetrics: a.bool('protectMetrics', false) };
  if (auth.protectMetrics && !token) throw new ConfigError(a.key('protectMetrics'), 'needs a token (admin.auth.tokenFile or RELAY_ADMIN_TOKEN): Prometheus sends it as a bearer token');
  a.done();
  return auth;
}

/** Configuration of the SMTP front door: listener TLS/AUTH/PROXY settings, users, sender policy, protocol limits. */

import path from 'node:path';
import { Reader, validateCidr } from './reader.js';
import { parsePasswordHash } from './password-hash.js';
import { ConfigError, PasswordHashError } from '../errors.js';

export type TlsMode = 'none' | 'starttls' | 'implicit';
export const TLS_VERSIONS = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;
export type TlsVersion = (typeof TLS_VERSIONS)[number];
export type AuthMode = 'none' | 'optional' | 'required';

export interface ListenerTlsConfig {
  mode: TlsMode;
  certFile: string | null;
  keyFile: string | null;
  minVersion: TlsVersion;
  /** OpenSSL cipher string; null = Mozilla "intermediate" (no CBC), or DEFAULT@SECLEVEL=0 when minVersion is below TLSv1.2. */
  ciphers: string | null;
  /** How often the certificate files are checked for a rotation. */
  reloadCheckIntervalMs: number;
}

/** The front-door part of a listener (merged into ListenerConfig). */
export interface ListenerSecurity {
  tls: ListenerTlsConfig;
  /** MAIL is refused until the session is encrypted. */
  requireTls: boolean;
  auth: AuthMode;
  /** Allows AUTH without TLS (legacy devices on a trusted network only). */
  allowInsecureAuth: boolean;
  /** CIDR ranges that may connect in order to authenticate (allowedNetworks may also relay without AUTH). */
  authNetworks: string[];
  proxyProtocol: { trustedProxies: string[] } | null;
}

/** What one sender (a user, or clients of a network) may do. Addresses and "@domain" patterns, lower-case. */
export interface SenderRights {
  allowedSenders: string[];
  /** Forced Graph mailbox for everything this sender sends. */
  mailbox: string | null;
  /** null = no restriction beyond policy.allowedRecipientDomains. */
  allowedRecipientDomains: string[] | null;
  /** The Graph account of everything this sender sends (src/policy/accounts.ts); null: the other rules decide. */
  account: string | null;
}

export interface UserConfig extends SenderRights {
  username: string;
  passwordHash: string;
}

export interface NetworkRuleConfig extends SenderRights {
  cidr: string;
}

export interface PolicyConfig {
  networks: NetworkRuleConfig[];
  checkHeaderFrom: boolean;
  allowedRecipientDomains: string[] | null;
  /** Recipients with "%" or "!" in the local part (old routing syntax: user%host@relay, host!user@relay) are taken; absent = false. */
  allowPercentHack?: boolean;
}

export interface FrontDoorLimits {
  maxConnections: number;
  maxConnectionsPerClient: number;
  maxCommandLength: number;
  maxLineLength: number;
  maxMessagesPerSession: number;
  idleTimeoutMs: number;
  authFailuresBeforeLockout: number;
  authLockoutMs: number;
  authFailureDelayMs: number;
  bareLineEndings: 'reject' | 'normalize';
  /** One log line per client address per this interval for errors a client can cause (failed TLS handshakes, resets). */
  clientErrorLogIntervalMs: number;
}

const ADDRESS = /^[^\s@<>]+@[^\s@<>]+$/;
const DOMAIN = /^[a-z0-9-]+(\.[a-z0-9-]+)*$/i;

function cidrList(r: Reader, name: string, def: string[]): string[] {
  return r.list(name, def).map((c, j) => {
    const key = `${r.key(name)}[${j}]`;
    if (typeof c !== 'string') throw new ConfigError(key, 'must be a string');
    validateCidr(key, c);
    return c;
  });
}

function senderPatterns(r: Reader, name: string, required: boolean): string[] {
  const list = r.list(name, []);
  if (required && list.length === 0) throw new ConfigError(r.key(name), 'needs at least one address or "@domain" pattern (whom this sender may send as)');
  return list.map((v, j) => {
    const s = typeof v === 'string' ? v.trim().toLowerCase() : '';
    if (s !== '<>' && !ADDRESS.test(s) && !(s.startsWith('@') && DOMAIN.test(s.slice(1)))) {
      throw new ConfigError(`${r.key(name)}[${j}]`, `must be an address, "@domain" or "<>" (got ${JSON.stringify(v)})`);
    }
    return s;
  });
}

function domainList(r: Reader, name: string): string[] | null {
  const v = r.raw(name);
  if (v === undefined || v === null) return null;
  return r.list(name, []).map((d, j) => {
    if (typeof d !== 'string' || !DOMAIN.test(d)) throw new ConfigError(`${r.key(name)}[${j}]`, `must be a domain name such as contoso.com (got ${JSON.stringify(d)})`);
    return d.toLowerCase();
  });
}

function rights(r: Reader, requireSenders: boolean): SenderRights {
  const mailbox = r.str('mailbox', null);
  if (mailbox !== null && !ADDRESS.test(mailbox)) throw new ConfigError(r.key('mailbox'), `must be a mailbox UPN such as scans@contoso.com (got "${mailbox}")`);
  return { allowedSenders: senderPatterns(r, 'allowedSenders', requireSenders), mailbox, allowedRecipientDomains: domainList(r, 'allowedRecipientDomains'), account: r.str('account', null) };
}

function readTls(r: Reader, baseDir: string): ListenerTlsConfig {
  const v = r.raw('tls');
  // `tls: starttls` is shorthand for `tls: { mode: starttls }`.
  const t = typeof v === 'string' ? new Reader({ mode: v }, r.key('tls')) : r.section('tls');
  const mode = t.oneOf('mode', ['none', 'starttls', 'implicit'] as const, 'none');
  const file = (name: string): string | null => {
    const f = t.str(name, null);
    return f === null ? null : path.resolve(baseDir, f);
  };
  const cfg: ListenerTlsConfig = {
    mode,
    certFile: file('certFile'),
    keyFile: file('keyFile'),
    minVersion: t.oneOf('minVersion', TLS_VERSIONS, 'TLSv1.2'),
    ciphers: t.str('ciphers', null),
    reloadCheckIntervalMs: t.duration('reloadCheckInterval', 10_000, 50, 3_600_000),
  };
  if (mode !== 'none' && (!cfg.certFile || !cfg.keyFile)) throw new ConfigError(t.key(cfg.certFile ? 'keyFile' : 'certFile'), `is required when tls.mode is ${mode} (PEM file)`);
  t.done();
  return cfg;
}

/** Reads the front-door keys of listeners[i]; `hasUsers` decides the default of auth. */
export function readListenerSecurity(r: Reader, baseDir: string, hasUsers: boolean): ListenerSecurity {
  const tls = readTls(r, baseDir);
  const auth = r.oneOf('auth', ['none', 'optional', 'required'] as const, hasUsers ? 'optional' : 'none');
  if (auth !== 'none' && !hasUsers) throw new ConfigError(r.key('auth'), `is ${auth} but no users are configured (users: [...])`);
  const p = r.raw('proxyProtocol');
  let proxyProtocol: ListenerSecurity['proxyProtocol'] = null;
  if (p !== undefined && p !== null && p !== false) {
    const pr = r.section('proxyProtocol');
    const trustedProxies = cidrList(pr, 'trustedProxies', []);
    if (trustedProxies.length === 0) throw new ConfigError(pr.key('trustedProxies'), 'needs the addresses of the load balancers that send the PROXY header');
    pr.done();
    proxyProtocol = { trustedProxies };
  }
  const sec: ListenerSecurity = {
    tls,
    requireTls: r.bool('requireTls', false),
    auth,
    allowInsecureAuth: r.bool('allowInsecureAuth', false),
    authNetworks: cidrList(r, 'authNetworks', ['0.0.0.0/0', '::/0']),
    proxyProtocol,
  };
  if (sec.requireTls && tls.mode === 'none') throw new ConfigError(r.key('requireTls'), 'needs tls.mode starttls or implicit');
  return sec;
}

export function readUsers(root: Reader): UserConfig[] {
  const names = new Set<string>();
  return root.list('users', []).map((item, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new ConfigError(`users[${i}]`, 'must be a mapping');
    const r = new Reader(item as Record<string, unknown>, `users[${i}]`);
    const username = r.str('username', '');
    if (!/^[\x21-\x7e]{1,256}$/.test(username)) throw new ConfigError(r.key('username'), 'is required (printable ASCII, no spaces)');
    if (names.has(username)) throw new ConfigError(r.key('username'), `duplicate user "${username}"`);
    names.add(username);
    if (r.raw('password') !== undefined) throw new ConfigError(r.key('password'), 'plaintext passwords are not accepted: use passwordHash (make one with "smtp-graph-relay hash-password")');
    const passwordHash = r.str('passwordHash', '');
    try {
      parsePasswordHash(passwordHash);
    } catch (err) {
      if (err instanceof PasswordHashError) throw new ConfigError(r.key('passwordHash'), err.message);
      throw err;
    }
    const u: UserConfig = { username, passwordHash, ...rights(r, true) };
    r.done();
    return u;
  });
}

export function readPolicy(r: Reader): PolicyConfig {
  const networks = r.list('networks', []).map((item, i) => {
    const key = `${r.key('networks')}[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new ConfigError(key, 'must be a mapping');
    const n = new Reader(item as Record<string, unknown>, key);
    const cidr = n.str('cidr', '');
    validateCidr(n.key('cidr'), cidr);
    const rule: NetworkRuleConfig = { cidr, ...rights(n, true) };
    n.done();
    return rule;
  });
  const cfg: PolicyConfig = {
    networks,
    checkHeaderFrom: r.bool('checkHeaderFrom', true),
    allowedRecipientDomains: domainList(r, 'allowedRecipientDomains'),
    allowPercentHack: r.bool('allowPercentHack', false),
  };
  r.done();
  return cfg;
}

export function readFrontDoorLimits(r: Reader): FrontDoorLimits {
  return {
    maxConnections: r.int('maxConnections', 200, 1, 100_000),
    maxConnectionsPerClient: r.int('maxConnectionsPerClient', 20, 1, 100_000),
    // RFC 5321 allows 512 for commands; AUTH PLAIN with long credentials needs more.
    maxCommandLength: r.int('maxCommandLength', 4096, 512, 65_536),
    maxLineLength: r.int('maxLineLength', 65_536, 1000, 16 * 1024 * 1024),
    maxMessagesPerSession: r.int('maxMessagesPerSession', 100, 1, 100_000),
    // RFC 5321 section 4.5.3.2.7: a server waits at least 5 minutes for the next command.
    idleTimeoutMs: r.duration('idleTimeout', 5 * 60_000, 1000, 3_600_000),
    authFailuresBeforeLockout: r.int('authFailuresBeforeLockout', 5, 1, 1000),
    authLockoutMs: r.duration('authLockout', 15 * 60_000, 1000, 7 * 86_400_000),
    authFailureDelayMs: r.duration('authFailureDelay', 1000, 0, 60_000),
    bareLineEndings: r.oneOf('bareLineEndings', ['reject', 'normalize'] as const, 'reject'),
    clientErrorLogIntervalMs: r.duration('clientErrorLogInterval', 60_000, 0, 86_400_000),
  };
}

/**
 * The Graph accounts: `graph:` (the default account, with the network settings every account shares) and
 * `accounts:` (more tenants or app registrations), each with its cloud, tenant, client id and credential.
 */

import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { CLOUDS, CLOUD_NAMES } from './clouds.js';
import type { GraphAccount, GraphConfig } from './config.js';
import { DEFAULT_MAX_REQUEST_BYTES, MAX_LARGE_MESSAGE, MB } from './config.js';
import { CREDENTIAL_SETTINGS, type CredentialSetting } from './credentials.js';
import { readProxy } from './proxy.js';
import { Reader, type Raw } from './reader.js';
import { envFirst } from './sections.js';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DOMAIN_NAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;
export const DEFAULT_ACCOUNT = 'default';
const ACCOUNT_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/i;

/** Environment variables that set an account: the default account's only. */
interface AccountEnv {
  graphUrl?: string;
  authorityHost?: string;
  tenantId?: string;
  clientId?: string;
  clientSecret?: string;
  clientCertificatePath?: string;
  federatedTokenFile?: string;
  credential?: string;
}

function httpsOrigin(key: string, v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(key, `"${v}" is not a URL`);
  }
  if (u.protocol !== 'https:') throw new ConfigError(key, `must be an https:// URL (got "${v}")`);
  return u.origin;
}

/** The keys an account has, in `graph:` and in each `accounts[]` entry. */
function readAccount(r: Reader, name: string, e: AccountEnv, baseDir: string): GraphAccount {
  const cloud = r.oneOf('cloud', CLOUD_NAMES, 'global');
  const endpoints = CLOUDS[cloud];
  const fileSecret = r.str('clientSecretFile', null);
  const inline = r.str('clientSecret', null);
  if (fileSecret !== null && inline !== null) throw new ConfigError(r.key('clientSecretFile'), 'give clientSecret or clientSecretFile, not both');
  const a: GraphAccount = {
    name,
    cloud,
    graphUrl: httpsOrigin(r.key('graphUrl'), envFirst(e.graphUrl, r.str('graphUrl', endpoints.graphUrl))),
    authorityHost: httpsOrigin(r.key('authorityHost'), envFirst(e.authorityHost, r.str('authorityHost', endpoints.authorityHost))),
    tenantId: envFirst(e.tenantId, r.str('tenantId', null)),
    clientId: envFirst(e.clientId, r.str('clientId', null)),
    clientSecret: envFirst(e.clientSecret, fileSecret !== null ? readSecret(r.key('clientSecretFile'), path.resolve(baseDir, fileSecret)) : inline),
    clientSecretExpiresAt: expiry(r),
    clientCertificatePath: envFirst(e.clientCertificatePath, r.str('clientCertificatePath', null)),
    credential: r.oneOf('credential', CREDENTIAL_SETTINGS, 'auto'),
    // Read the key before the variable so that a file setting overridden by the environment is not an "unknown setting".
    federatedTokenFile: envFirst(e.federatedTokenFile, r.str('federatedTokenFile', null)),
    domains: r.list('domains', []).map((d, i) => {
      if (typeof d !== 'string' || !DOMAIN_NAME.test(d)) throw new ConfigError(`${r.key('domains')}[${i}]`, `must be a domain name such as contoso.com (got ${JSON.stringify(d)})`);
      return d.toLowerCase();
    }),
    checkPermissions: r.bool('checkPermissions', true),
  };
  if (e.credential) {
    if (!(CREDENTIAL_SETTINGS as readonly string[]).includes(e.credential)) throw new ConfigError('RELAY_CREDENTIAL', `must be one of ${CREDENTIAL_SETTINGS.join(', ')} (got "${e.credential}")`);
    a.credential = e.credential as CredentialSetting;
  }
  // A placeholder left in a deployment template fails here, naming itself, not later at Entra ID.
  if (a.tenantId !== null && !GUID.test(a.tenantId) && !DOMAIN_NAME.test(a.tenantId)) {
    throw new ConfigError(e.tenantId ? 'AZURE_TENANT_ID' : r.key('tenantId'), `"${a.tenantId}" is not a tenant: use the Directory (tenant) ID, a GUID, or a verified domain such as contoso.onmicrosoft.com`);
  }
  if (a.clientId !== null && !GUID.test(a.clientId)) {
    throw new ConfigError(e.clientId ? 'AZURE_CLIENT_ID' : r.key('clientId'), `"${a.clientId}" is not a client id: use the app registration's Application (client) ID, a GUID`);
  }
  if (a.clientCertificatePath) a.clientCertificatePath = path.resolve(baseDir, a.clientCertificatePath);
  if (a.federatedTokenFile) a.federatedTokenFile = path.resolve(baseDir, a.federatedTokenFile);
  return a;
}

/** graph.caFile: certificate authorities (PEM) to trust besides the system's; every certificate in it must parse. */
function readTrustedCa(r: Reader, baseDir: string): string | null {
  const file = r.str('caFile', null);
  if (file === null) return null;
  const full = path.resolve(baseDir, file);
  let pem: string;
  try {
    pem = readFileSync(full, 'utf8');
  } catch (err) {
    throw new ConfigError(r.key('caFile'), `cannot read ${full}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (certs.length === 0) throw new ConfigError(r.key('caFile'), `${full} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  for (const c of certs) {
    try {
      new X509Certificate(c);
    } catch (err) {
      throw new ConfigError(r.key('caFile'), `${full}: a certificate does not parse (${(err as Error).message})`);
    }
  }
  return certs.join('\n');
}

/** graph.clientSecretExpires: a date (2027-06-30) or a date and time, for the credential expiry metric. */
function expiry(r: Reader): number | null {
  const v = r.raw('clientSecretExpires');
  if (v === undefined || v === null) return null;
  const t = v instanceof Date ? v.getTime() : typeof v === 'string' && /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw new ConfigError(r.key('clientSecretExpires'), `must be a date such as 2027-06-30 (got ${JSON.stringify(v)})`);
  return t;
}

export function readGraph(r: Reader, env: NodeJS.ProcessEnv, baseDir: string): GraphConfig {
  const account = readAccount(
    r,
    DEFAULT_ACCOUNT,
    {
      graphUrl: env.RELAY_GRAPH_URL,
      authorityHost: env.AZURE_AUTHORITY_HOST,
      tenantId: env.AZURE_TENANT_ID,
      clientId: env.AZURE_CLIENT_ID,
      clientSecret: secret(env, 'AZURE_CLIENT_SECRET'),
      clientCertificatePath: env.AZURE_CLIENT_CERTIFICATE_PATH,
      federatedTokenFile: env.AZURE_FEDERATED_TOKEN_FILE,
      credential: env.RELAY_CREDENTIAL,
    },
    baseDir,
  );
  const cfg: GraphConfig = {
    ...account,
    maxRequestBytes: r.size('maxRequestBytes', DEFAULT_MAX_REQUEST_BYTES, 64 * 1024, 4 * 1024 * 1024),
    uploadBudgetBytes: r.size('uploadBudget', MAX_LARGE_MESSAGE, 1 * MB, 10 * MAX_LARGE_MESSAGE),
    uploadBudgetWindowMs: r.duration('uploadBudgetWindow', 5 * 60_000, 1000),
    connectTimeoutMs: r.duration('connectTimeout', 10_000, 100),
    headersTimeoutMs: r.duration('headersTimeout', 60_000, 100),
    bodyTimeoutMs: r.duration('bodyTimeout', 60_000, 100),
    reloadCheckIntervalMs: r.duration('reloadCheckInterval', 10_000, 50, 3_600_000),
    proxy: readProxy(r, env, baseDir),
    trustedCa: readTrustedCa(r, baseDir),
  };
  r.done();
  return cfg;
}

/** `accounts:`: more Graph accounts, each named, none with the environment's AZURE_* variables (those are the default account's). */
export function readAccounts(root: Reader, baseDir: string): GraphAccount[] {
  const names = new Set([DEFAULT_ACCOUNT]);
  return root.list('accounts', []).map((item, i) => {
    const key = `accounts[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new ConfigError(key, 'must be a mapping');
    const r = new Reader(item as Raw, key);
    const name = r.str('name', '');
    if (!ACCOUNT_NAME.test(name)) throw new ConfigError(r.key('name'), `is required: a short name such as fabrikam (letters, digits, ".", "_", "-"; got ${JSON.stringify(name)})`);
    if (names.has(name)) throw new ConfigError(r.key('name'), name === DEFAULT_ACCOUNT ? '"default" is the graph: section\'s account' : `duplicate account name "${name}"`);
    names.add(name);
    const a = readAccount(r, name, {}, baseDir);
    r.done();
    return a;
  });
}

/** A secret from VAR, or from the file named by VAR_FILE (Docker and Kubernetes secrets). */
function secret(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const file = env[`${name}_FILE`];
  if (file) return readSecret(`${name}_FILE`, file);
  return env[name] || undefined;
}

function readSecret(key: string, file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(key, `cannot read "${file}": ${(err as Error).message}`);
  }
}

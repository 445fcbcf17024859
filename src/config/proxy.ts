/**
 * graph.proxy, or the environment's proxy variables as curl and the Azure SDKs read them: the outbound
 * proxy that Entra ID token requests, Graph requests and attachment uploads go through.
 */

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { noProxyProblem, splitNoProxy } from '../net/no-proxy.js';
import type { ProxyConfig } from './config.js';
import { Reader } from './reader.js';

/** All of Graph and Entra ID is https: the https variables first, lower case before upper case (as curl and undici). */
export const PROXY_VARIABLES = ['https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY', 'http_proxy', 'HTTP_PROXY'] as const;
export const NO_PROXY_VARIABLES = ['no_proxy', 'NO_PROXY'] as const;

/**
 * `graph.proxy: false` ignores the environment; `graph.proxy: URL` or `{ url, username, password | passwordFile,
 * noProxy }` sets it; without the key, the first proxy variable set applies, with NO_PROXY.
 */
export function readProxy(g: Reader, env: NodeJS.ProcessEnv, baseDir: string): ProxyConfig | null {
  const raw = g.raw('proxy');
  const key = g.key('proxy');
  if (raw === false) return null;
  const envNoProxy = (): string[] => {
    const name = NO_PROXY_VARIABLES.find((n) => env[n] !== undefined);
    return name ? checkedNoProxy(name, splitNoProxy(env[name]!)) : [];
  };
  if (raw === undefined || raw === null) {
    const name = PROXY_VARIABLES.find((n) => env[n]);
    if (!name) return null;
    return { ...parseProxyUrl(name, env[name]!), noProxy: envNoProxy(), source: name };
  }
  const p = typeof raw === 'string' ? new Reader({ url: raw }, key) : g.section('proxy');
  const url = p.str('url', null);
  if (!url) throw new ConfigError(p.key('url'), 'is required: the proxy, such as http://proxy.contoso.com:3128 (or graph.proxy: false to ignore HTTPS_PROXY)');
  const parsed = parseProxyUrl(p.key('url'), url);
  const username = p.str('username', null) ?? parsed.username;
  let password = p.str('password', null);
  const passwordFile = p.str('passwordFile', null);
  if (password !== null && passwordFile !== null) throw new ConfigError(p.key('passwordFile'), 'give password or passwordFile, not both');
  if (passwordFile !== null) password = readSecretFile(p.key('passwordFile'), passwordFile, baseDir);
  password ??= parsed.password;
  if (password !== null && username === null) throw new ConfigError(p.key('username'), 'is required with a proxy password');
  const rawNo = p.raw('noProxy');
  const noProxy = rawNo === undefined || rawNo === null ? envNoProxy() : checkedNoProxy(p.key('noProxy'), typeof rawNo === 'string' ? splitNoProxy(rawNo) : p.list('noProxy', []).map(String));
  p.done();
  return { url: parsed.url, username, password, noProxy, source: 'graph.proxy' };
}

/** `host:port` alone means http://host:port, as curl reads it; credentials in the URL are taken out of it. */
function parseProxyUrl(key: string, value: string): Pick<ProxyConfig, 'url' | 'username' | 'password'> {
  let u: URL;
  try {
    u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`);
  } catch {
    throw new ConfigError(key, 'is not a proxy URL such as http://proxy.contoso.com:3128');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(key, `must be an http:// or https:// proxy (got ${u.protocol.replace(':', '')})`);
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) throw new ConfigError(key, 'must be scheme://host:port, without a path');
  const username = u.username ? decodeURIComponent(u.username) : null;
  const password = u.password ? decodeURIComponent(u.password) : null;
  return { url: `${u.protocol}//${u.host}`, username, password };
}

function checkedNoProxy(key: string, list: string[]): string[] {
  list.forEach((e, i) => {
    const problem = noProxyProblem(String(e));
    if (problem) throw new ConfigError(key.includes('.') ? `${key}[${i}]` : key, problem);
  });
  return list.map((e) => String(e).trim());
}

function readSecretFile(key: string, file: string, baseDir: string): string {
  try {
    return readFileSync(path.resolve(baseDir, file), 'utf8').trim();
  } catch (err) {
    throw new ConfigError(key, `cannot read "${file}": ${(err as Error).message}`);
  }
}

/** For logs and check-config: the proxy with its password replaced. */
export function redactProxy(p: ProxyConfig | null): ProxyConfig | null {
  return p && { ...p, password: p.password === null ? null : '[redacted]' };
}

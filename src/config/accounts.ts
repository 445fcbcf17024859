/** The Graph accounts as a whole: which exist, the default one, and every reference to one checked at load. */

import { ConfigError } from '../errors.js';
import type { GraphAccount, GraphConfig, RelayConfig } from './config.js';
import { selectCredential } from './credentials.js';
import { DEFAULT_ACCOUNT } from './graph.js';

/** Every account, the default (the graph: section) first when it is one. */
export function graphAccounts(cfg: Pick<RelayConfig, 'graph' | 'accounts' | 'defaultAccount'>): GraphAccount[] {
  return cfg.defaultAccount === DEFAULT_ACCOUNT ? [cfg.graph, ...cfg.accounts] : cfg.accounts;
}

/** An account with the network settings of graph: (timeouts, proxy, request limits): what a token provider and an adapter are made with. */
export function accountGraphConfig(graph: GraphConfig, account: GraphAccount): GraphConfig {
  return { ...graph, ...account };
}

/**
 * Without `accounts:`, graph: is the account, with or without credentials (which requireCredentials then
 * asks for). With `accounts:`, graph: is an account only when it names a tenant, an app or a credential.
 */
export function defaultAccountOf(graph: GraphConfig, accounts: GraphAccount[]): string | null {
  if (accounts.length === 0) return DEFAULT_ACCOUNT;
  const g = graph;
  const named = g.tenantId || g.clientId || g.clientSecret || g.clientCertificatePath || g.federatedTokenFile || g.credential !== 'auto';
  return named ? DEFAULT_ACCOUNT : null;
}

/** Listeners, users, networks and mappings name only accounts that exist; no domain belongs to two accounts. */
export function checkAccountReferences(cfg: RelayConfig): void {
  const names = new Set(graphAccounts(cfg).map((a) => a.name));
  const known = (key: string, name: string | null): void => {
    if (name === null || names.has(name)) return;
    throw new ConfigError(key, `no Graph account "${name}" (accounts: ${[...names].join(', ') || 'none'})`);
  };
  cfg.listeners.forEach((l, i) => known(`listeners[${i}].account`, l.account));
  cfg.users.forEach((u, i) => known(`users[${i}].account`, u.account));
  cfg.policy.networks.forEach((n, i) => known(`policy.networks[${i}].account`, n.account));
  for (const [from, name] of Object.entries(cfg.mailboxes.accountFor)) known(`mailboxes.map.${from}.account`, name);
  const owner = new Map<string, string>();
  for (const a of graphAccounts(cfg)) {
    for (const d of a.domains) {
      const other = owner.get(d);
      if (other) throw new ConfigError(a.name === DEFAULT_ACCOUNT ? 'graph.domains' : `accounts.${a.name}.domains`, `${d} is already a domain of account "${other}"`);
      owner.set(d, a.name);
    }
  }
}

/** Production mode never falls back to capture: an account without its credential stops the relay here. */
export function requireAccountCredentials(cfg: RelayConfig, env: NodeJS.ProcessEnv): void {
  const accounts = graphAccounts(cfg);
  if (accounts.length === 0) throw new ConfigError('accounts', 'no Graph account has credentials: set graph: (AZURE_TENANT_ID, AZURE_CLIENT_ID, …) or give the accounts: entries theirs');
  accounts.forEach((a) => {
    const sel = selectCredential(a, env);
    if (!sel.ok) throw new ConfigError(accountKey(cfg, a, sel.key), sel.problem);
  });
}

/** `graph.clientSecret` for the default account, `accounts[1].clientSecret` for another. */
export function accountKey(cfg: Pick<RelayConfig, 'accounts'>, a: GraphAccount, key: string): string {
  const i = cfg.accounts.indexOf(a);
  return i < 0 ? key : key.replace(/^graph\./, `accounts[${i}].`);
}

/** graph.proxy and the proxy variables, and several Graph accounts: what loads, what is refused and why, what is never shown. */

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { graphAccounts } from '../../src/config/accounts.js';
import { buildConfig, redactConfig } from '../../src/config/load.js';

const TENANT_A = '6f1d3c2b-8a4e-4b7f-9c5d-2e0a1b3c4d5e';
const TENANT_B = '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';
const APP = '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f';
const base = { mailboxes: { senderDomains: ['contoso.example'] } };
const graph = { tenantId: TENANT_A, clientId: APP, clientSecret: 's' };
const load = (extra: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) => buildConfig({ ...base, ...extra }, env, '/etc/relay');

describe('graph.proxy and the proxy variables', () => {
  it('takes the environment as curl does: https_proxy before HTTPS_PROXY before http_proxy, NO_PROXY with it', () => {
    const c = load({ graph }, { HTTP_PROXY: 'http://wrong:1', HTTPS_PROXY: 'http://upper:3128', https_proxy: 'http://lower:3128', NO_PROXY: '.internal.example, 10.0.0.0/8' });
    expect(c.graph.proxy).toEqual({ url: 'http://lower:3128', username: null, password: null, noProxy: ['.internal.example', '10.0.0.0/8'], source: 'https_proxy' });
    expect(load({ graph }, { HTTP_PROXY: 'proxy.corp:8080' }).graph.proxy?.url).toBe('http://proxy.corp:8080');
    expect(load({ graph }, {}).graph.proxy).toBeNull();
  });

  it('the file wins over the environment, and graph.proxy: false ignores it', () => {
    expect(load({ graph: { ...graph, proxy: 'http://file:3128' } }, { HTTPS_PROXY: 'http://env:3128' }).graph.proxy).toMatchObject({ url: 'http://file:3128', source: 'graph.proxy' });
    expect(load({ graph: { ...graph, proxy: false } }, { HTTPS_PROXY: 'http://env:3128' }).graph.proxy).toBeNull();
  });

  it('credentials in the URL or as keys (a password file too) are taken out of the URL and never shown', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'proxy-'));
    writeFileSync(path.join(dir, 'pw'), 'from-file\n');
    const inUrl = load({ graph }, { HTTPS_PROXY: 'http://relay:p%40ss@proxy:3128' });
    expect(inUrl.graph.proxy).toMatchObject({ url: 'http://proxy:3128', username: 'relay', password: 'p@ss' });
    const keys = buildConfig({ ...base, graph: { ...graph, proxy: { url: 'http://proxy:3128', username: 'relay', passwordFile: 'pw', noProxy: ['localhost'] } } }, {}, dir);
    expect(keys.graph.proxy).toMatchObject({ username: 'relay', password: 'from-file', noProxy: ['localhost'] });
    const shown = JSON.stringify(redactConfig(inUrl));
    expect(shown).not.toContain('p@ss');
    expect(shown).toContain('"password":"[redacted]"');
  });

  it('refuses what it cannot use, naming the key', () => {
    expect(() => load({ graph: { ...graph, proxy: 'socks5://proxy:1080' } })).toThrow(/graph.proxy.url: must be an http:\/\/ or https:\/\/ proxy \(got socks5\)/);
    expect(() => load({ graph: { ...graph, proxy: { url: 'http://p:1', noProxy: ['10.0.0.0/40'] } } })).toThrow(/graph.proxy.noProxy\[0\]: "10.0.0.0\/40" is not an IP range/);
    expect(() => load({ graph: { ...graph, proxy: { url: 'http://p:1', password: 'x' } } })).toThrow(/graph.proxy.username: is required with a proxy password/);
    expect(() => load({ graph: { ...graph, proxy: { url: 'http://p:1', user: 'x' } } })).toThrow(/graph.proxy.user: unknown setting/);
    expect(() => load({ graph }, { HTTPS_PROXY: 'http://p:1/path' })).toThrow(/HTTPS_PROXY: must be scheme:\/\/host:port, without a path/);
  });
});

describe('several Graph accounts', () => {
  const fabrikam = { name: 'fabrikam', tenantId: TENANT_B, clientId: APP, clientSecret: 'b', domains: ['fabrikam.example'], clientSecretExpires: '2027-06-30' };

  it('graph: stays the default account; accounts: add named ones with their own credentials and domains', () => {
    const c = load({ graph, accounts: [fabrikam] });
    expect(c.defaultAccount).toBe('default');
    expect(graphAccounts(c).map((a) => [a.name, a.tenantId])).toEqual([['default', TENANT_A], ['fabrikam', TENANT_B]]);
    expect(c.accounts[0]).toMatchObject({ domains: ['fabrikam.example'], clientSecretExpiresAt: Date.parse('2027-06-30'), checkPermissions: true });
    const shown = JSON.stringify(redactConfig(c));
    expect(shown).not.toMatch(/"clientSecret":"[bs]"/);
  });

  it('without credentials in graph:, only the named accounts exist and there is no default', () => {
    const c = load({ accounts: [fabrikam, { ...fabrikam, name: 'contoso', tenantId: TENANT_A, domains: ['contoso.example'] }] });
    expect(c.defaultAccount).toBeNull();
    expect(graphAccounts(c).map((a) => a.name)).toEqual(['fabrikam', 'contoso']);
  });

  it('every reference names an account that exists, and a domain belongs to one account only', () => {
    expect(() => load({ graph, accounts: [fabrikam], listeners: [{ account: 'nope' }] })).toThrow(/listeners\[0\].account: no Graph account "nope" \(accounts: default, fabrikam\)/);
    expect(() => load({ graph, accounts: [fabrikam], mailboxes: { map: { '@printer.local': { mailbox: 'scans@fabrikam.example', account: 'x' } } } })).toThrow(/mailboxes.map.@printer.local.account: no Graph account "x"/);
    expect(() => load({ graph: { ...graph, domains: ['fabrikam.example'] }, accounts: [fabrikam] })).toThrow(/fabrikam.example is already a domain of account "default"/);
    expect(() => load({ graph, accounts: [fabrikam, fabrikam] })).toThrow(/accounts\[1\].name: duplicate account name "fabrikam"/);
    expect(() => load({ graph, accounts: [{ ...fabrikam, name: 'default' }] })).toThrow(/"default" is the graph: section's account/);
  });

  it('an account without its credential stops the relay, naming the account key', () => {
    const { clientSecret: _, ...noSecret } = fabrikam;
    expect(() => load({ graph, accounts: [noSecret] })).toThrow(/accounts\[0\].credential: no Graph credential/);
    expect(() => load({ graph, accounts: [{ ...fabrikam, clientSecretExpires: 'soon' }] })).toThrow(/accounts\[0\].clientSecretExpires: must be a date such as 2027-06-30/);
  });
});

/** NO_PROXY as curl reads it, and the dispatchers that follow it: which hosts go through the proxy. */

import { describe, expect, it } from 'vitest';
import { NoProxy, noProxyProblem, splitNoProxy } from '../../src/net/no-proxy.js';
import { describeNetworkError, networkErrorCode } from '../../src/net/network-errors.js';
import { Outbound } from '../../src/net/outbound.js';

const direct = (list: string, url: string): boolean => new NoProxy(splitNoProxy(list)).bypass(new URL(url));

describe('NO_PROXY', () => {
  it('a name matches itself and its subdomains, with or without a leading dot or *.', () => {
    for (const entry of ['contoso.com', '.contoso.com', '*.contoso.com']) {
      expect(direct(entry, 'https://contoso.com/'), entry).toBe(true);
      expect(direct(entry, 'https://login.contoso.com/'), entry).toBe(true);
      expect(direct(entry, 'https://notcontoso.com/'), entry).toBe(false);
      expect(direct(entry, 'https://contoso.com.evil.example/'), entry).toBe(false);
    }
    expect(direct('LOGIN.microsoftonline.com', 'https://login.MicrosoftOnline.com/x')).toBe(true);
  });

  it('host:port matches that port only (the scheme gives the default port)', () => {
    expect(direct('graph.local:8443', 'https://graph.local:8443/')).toBe(true);
    expect(direct('graph.local:8443', 'https://graph.local/')).toBe(false);
    expect(direct('graph.local:443', 'https://graph.local/')).toBe(true);
  });

  it('addresses and CIDR ranges match hosts written as addresses, IPv4 and IPv6', () => {
    expect(direct('127.0.0.1', 'https://127.0.0.1:9/')).toBe(true);
    expect(direct('10.0.0.0/8, 169.254.0.0/16', 'http://169.254.169.254/metadata')).toBe(true);
    expect(direct('10.0.0.0/8', 'https://10.20.30.40/')).toBe(true);
    expect(direct('10.0.0.0/8', 'https://11.0.0.1/')).toBe(false);
    expect(direct('::1', 'https://[::1]:8443/')).toBe(true);
    expect(direct('[fd00::]/8', 'https://[fd12::1]/')).toBe(true);
    // A name is never resolved to decide.
    expect(direct('127.0.0.0/8', 'https://localhost/')).toBe(false);
  });

  it('* alone sends everything directly; an empty list nothing', () => {
    expect(direct('*', 'https://graph.microsoft.com/')).toBe(true);
    expect(direct('', 'https://graph.microsoft.com/')).toBe(false);
  });

  it('says what is wrong with an entry', () => {
    expect(noProxyProblem('10.0.0.0/33')).toMatch(/not an IP range/);
    expect(noProxyProblem('host:99999')).toMatch(/port outside/);
    expect(noProxyProblem('bad host!')).toMatch(/not a host name/);
    expect(noProxyProblem('.contoso.com')).toBeNull();
  });
});

describe('Outbound', () => {
  it('names the proxy a request goes through, without its credentials, and none for NO_PROXY hosts', async () => {
    const net = new Outbound({ connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000, connections: 1, proxy: { url: 'http://proxy.contoso.com:3128', username: 'relay', password: 'pw', noProxy: ['.internal.example'], source: 'graph.proxy' } });
    expect(net.proxyFor('https://graph.microsoft.com/v1.0')).toBe('http://proxy.contoso.com:3128');
    expect(net.via('https://graph.microsoft.com/v1.0')).toBe(' via proxy http://proxy.contoso.com:3128');
    expect(net.proxyFor('https://graph.internal.example/')).toBeNull();
    expect(net.via('https://graph.internal.example/')).toBe('');
    expect(net.direct).not.toBe(net.dispatcher);
    await net.close();
    const none = new Outbound({ connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000, connections: 1, proxy: null });
    expect(none.proxyFor('https://graph.microsoft.com/')).toBeNull();
    expect(none.direct).toBe(none.dispatcher);
    await none.close();
  });

  it('a tunnel the proxy refused is named with its status and the fix', () => {
    const refused = new Error('Proxy response (407) !== 200 when HTTP Tunneling');
    expect(networkErrorCode(refused)).toBe('PROXY_407');
    expect(describeNetworkError(refused)).toMatch(/^the proxy refused the tunnel: HTTP 407 Proxy Authentication Required: give the proxy a username and password .*\(PROXY_407\)$/);
    expect(describeNetworkError({ message: 'fetch failed', cause: new Error('Proxy response (403) !== 200 when HTTP Tunneling') })).toMatch(/HTTP 403: the proxy's rules do not allow a tunnel/);
  });
});

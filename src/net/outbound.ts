/**
 * The one place that makes the relay's HTTP dispatchers (undici): Graph, attachment uploads and Entra ID go
 * through `dispatcher` (via the proxy unless NO_PROXY names the host); managed identity endpoints through
 * `direct`, always: IMDS (169.254.169.254) and the App Service, Container Apps and Arc endpoints are on the
 * host or its link-local network, where a corporate proxy cannot reach.
 */

import tls from 'node:tls';
import { Agent, Pool, ProxyAgent, type Dispatcher } from 'undici';
import type { GraphConfig, ProxyConfig } from '../config/config.js';
import { NoProxy } from './no-proxy.js';

export interface OutboundOptions {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Connections per origin (delivery.globalConcurrency for Graph), so the pool never makes a request wait. */
  connections: number;
  proxy: ProxyConfig | null;
  /** Certificate authorities (PEM) trusted besides the system's (graph.caFile); null: the system's only. */
  ca?: string | null;
}

export class Outbound {
  /** Graph, upload URLs and Entra ID. */
  readonly dispatcher: Dispatcher;
  /** Managed identity endpoints: never through the proxy. */
  readonly direct: Dispatcher;
  private readonly noProxy: NoProxy | null;

  /** The dispatchers for Entra ID and Graph as graph.* sets them: timeouts, proxy, extra CAs. */
  static forGraph(g: GraphConfig, connections: number, bodyTimeoutMs = g.bodyTimeoutMs): Outbound {
    return new Outbound({ connectTimeoutMs: g.connectTimeoutMs, headersTimeoutMs: g.headersTimeoutMs, bodyTimeoutMs, connections, proxy: g.proxy, ca: g.trustedCa });
  }

  constructor(private readonly opts: OutboundOptions) {
    // undici's `ca` replaces the system's authorities: the extra ones are added to them, not put in their place.
    const ca = opts.ca ? [...tls.rootCertificates, opts.ca] : undefined;
    const pool = {
      connections: opts.connections,
      pipelining: 1,
      connect: { timeout: opts.connectTimeoutMs, ...(ca ? { ca } : {}) },
      headersTimeout: opts.headersTimeoutMs,
      bodyTimeout: opts.bodyTimeoutMs,
      keepAliveTimeout: 30_000,
    };
    this.direct = new Agent(pool);
    const proxy = opts.proxy;
    this.noProxy = proxy ? new NoProxy(proxy.noProxy) : null;
    if (!proxy) {
      this.dispatcher = this.direct;
      return;
    }
    const token = proxy.username !== null ? `Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`).toString('base64')}` : undefined;
    const tlsOpts = { timeout: opts.connectTimeoutMs, ...(ca ? { ca } : {}) };
    // One dispatcher per origin, as undici's Agent keeps them: a tunnelling ProxyAgent, or a Pool for NO_PROXY hosts.
    this.dispatcher = new Agent({
      ...pool,
      factory: (origin, o) => (this.proxyFor(String(origin)) ? new ProxyAgent({ ...o, uri: proxy.url, ...(token ? { token } : {}), proxyTls: tlsOpts, requestTls: tlsOpts }) : new Pool(origin, o)),
    });
  }

  /** The proxy (without credentials) a request to `url` goes through, or null when it goes directly. */
  proxyFor(url: string | URL): string | null {
    const proxy = this.opts.proxy;
    if (!proxy || !this.noProxy) return null;
    return this.noProxy.bypass(typeof url === 'string' ? new URL(url) : url) ? null : proxy.url;
  }

  /** " via proxy http://proxy:3128" for an error message about a request to `url`, or "". */
  via(url: string | URL): string {
    const p = this.proxyFor(url);
    return p ? ` via proxy ${p}` : '';
  }

  async close(): Promise<void> {
    await Promise.all([...new Set([this.dispatcher, this.direct])].map((d) => d.close().catch(() => undefined)));
  }

  /** Requests still running are abandoned. */
  async destroy(): Promise<void> {
    await Promise.all([...new Set([this.dispatcher, this.direct])].map((d) => d.destroy().catch(() => undefined)));
  }
}

/** msal-node's HTTP through undici: timeouts of our own, and a failure that names the host, the step and the cause. */

import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from '@azure/msal-node';
import { request, type Dispatcher } from 'undici';
import { describeNetworkError } from '../net/network-errors.js';

/** A request to Entra ID (or a managed identity endpoint) that got no HTTP answer. */
export interface TokenNetworkFailure {
  /** e.g. "token request POST login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token". */
  step: string;
  cause: string;
}

export interface MsalNetworkOptions {
  headersTimeoutMs: number;
  /** Carries the connect timeout, and the proxy where one is set (src/net/outbound.ts). */
  dispatcher: Dispatcher;
  /** " via proxy …" for a failure of a request to this URL, or "". */
  via?: (url: string) => string;
}

/**
 * msal wraps a failed request in its own error (`endpoints_resolution_error`, `network_error`, "fetch
 * failed"), which names neither the host nor the reason. This module keeps the last failure for the
 * token provider to report, and uses undici rather than fetch (the same client as the Graph requests).
 */
export class MsalNetwork implements INetworkModule {
  lastFailure: TokenNetworkFailure | null = null;

  constructor(private readonly opts: MsalNetworkOptions) {}

  sendGetRequestAsync<T>(url: string, options?: NetworkRequestOptions, timeout?: number): Promise<NetworkResponse<T>> {
    return this.send<T>('GET', url, options, timeout);
  }

  sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    return this.send<T>('POST', url, options);
  }

  private async send<T>(method: 'GET' | 'POST', url: string, options: NetworkRequestOptions | undefined, timeout?: number): Promise<NetworkResponse<T>> {
    const headersTimeout = timeout ?? this.opts.headersTimeoutMs;
    try {
      const res = await request(url, {
        method,
        headers: options?.headers,
        body: method === 'POST' ? (options?.body ?? '') : undefined,
        headersTimeout,
        bodyTimeout: headersTimeout,
        dispatcher: this.opts.dispatcher,
      });
      const text = await res.body.text();
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : {};
      } catch {
        // msal reads error details from a JSON body; a proxy's HTML page still has a status to report.
        body = { error: 'non_json_response', error_description: `HTTP ${res.statusCode} with a body that is not JSON (${text.slice(0, 80).replace(/\s+/g, ' ')})` };
      }
      return { headers, body: body as T, status: res.statusCode };
    } catch (err) {
      this.lastFailure = { step: `${stepName(url)} ${method} ${hostAndPath(url)}${this.opts.via?.(url) ?? ''}`, cause: describeNetworkError(err) };
      throw err;
    }
  }
}

function stepName(url: string): string {
  if (url.includes('/oauth2/') && url.includes('/token')) return 'token request';
  if (url.includes('openid-configuration') || url.includes('/discovery/')) return 'tenant discovery';
  return 'managed identity token request';
}

function hostAndPath(url: string): string {
  try {
    const u = new URL(url);
    return `${u.host}${u.pathname}`;
  } catch {
    return url;
  }
}

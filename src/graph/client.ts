/** The Graph HTTP client: undici Pool, exact Content-Length, timeouts, Graph's error JSON parsed. */

import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { Pool, errors as undiciErrors } from 'undici';
import { describeNetworkError, networkErrorCode } from '../net/network-errors.js';

export interface GraphErrorBody {
  code: string;
  message: string;
  requestId: string | null;
}

export interface GraphResponse {
  status: number;
  requestId: string | null;
  clientRequestId: string;
  retryAfterMs: number | null;
  error: GraphErrorBody | null;
}

/** A request that got no HTTP answer. `bodySent` tells whether Graph may have received the whole message. */
export class GraphNetworkError extends Error {
  constructor(
    readonly code: string,
    readonly bodySent: boolean,
    message: string,
    readonly clientRequestId: string,
  ) {
    super(message);
    this.name = 'GraphNetworkError';
  }
}

export interface GraphClientOptions {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  connections: number;
}

/** Retry-After is seconds or an HTTP date (RFC 9110 section 10.2.3). */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return null;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : Math.max(0, t - now);
}

function header(h: Record<string, string | string[] | undefined>, name: string): string | null {
  const v = h[name];
  return (Array.isArray(v) ? v[0] : v) ?? null;
}

const MAX_ERROR_BODY = 64 * 1024;

export class GraphClient {
  private readonly pool: Pool;

  constructor(
    readonly graphUrl: string,
    opts: GraphClientOptions,
  ) {
    this.pool = new Pool(graphUrl, {
      connections: opts.connections,
      pipelining: 1,
      connect: { timeout: opts.connectTimeoutMs },
      headersTimeout: opts.headersTimeoutMs,
      bodyTimeout: opts.bodyTimeoutMs,
      keepAliveTimeout: 30_000,
    });
  }

  /**
   * POST {graph}/v1.0/users/{upn}/sendMail with the MIME message as base64 text. `body` must produce
   * exactly `length` bytes; `bodyDone` reports whether it finished, which decides if a failure is ambiguous.
   */
  async sendMime(upn: string, token: string, body: AsyncIterable<Buffer> | Buffer, length: number, bodyDone: () => boolean): Promise<GraphResponse> {
    return this.request('POST', `/v1.0/users/${encodeURIComponent(upn)}/sendMail`, token, 'text/plain', body, length, bodyDone);
  }

  async request(
    method: 'POST' | 'GET' | 'DELETE' | 'PUT',
    path: string,
    token: string,
    contentType: string | null,
    body: AsyncIterable<Buffer> | Buffer | string | null,
    length: number,
    bodyDone: () => boolean,
  ): Promise<GraphResponse> {
    const clientRequestId = randomUUID();
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      'client-request-id': clientRequestId,
      'return-client-request-id': 'true',
      'content-length': String(length),
    };
    if (contentType) headers['content-type'] = contentType;
    let res;
    try {
      const payload = body === null || typeof body === 'string' || Buffer.isBuffer(body) ? body : Readable.from(body, { objectMode: false });
      res = await this.pool.request({ method, path, headers, body: payload });
    } catch (err) {
      throw toNetworkError(err, bodyDone(), clientRequestId, `${method} ${new URL(this.graphUrl).host}${path.split('?')[0]}`);
    }
    const requestId = header(res.headers, 'request-id');
    if (res.statusCode >= 200 && res.statusCode < 300) {
      await res.body.dump();
      return { status: res.statusCode, requestId, clientRequestId, retryAfterMs: null, error: null };
    }
    let text = '';
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if (text.length < MAX_ERROR_BODY) text += chunk.toString('utf8');
      }
    } catch {
      // The status line is what matters; a body cut short only loses detail.
    }
    return {
      status: res.statusCode,
      requestId,
      clientRequestId,
      retryAfterMs: parseRetryAfter(res.headers['retry-after']),
      error: parseGraphError(text, requestId),
    };
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  /** After the grace period: requests still running are abandoned (their messages stay queued). */
  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}

/** Graph errors: {"error":{"code","message","innerError":{"request-id"}}}; anything else keeps its status only. */
export function parseGraphError(text: string, requestId: string | null): GraphErrorBody | null {
  try {
    const j = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; innerError?: Record<string, unknown> } };
    if (!j.error || typeof j.error.code !== 'string') return null;
    const inner = j.error.innerError?.['request-id'];
    return {
      code: j.error.code,
      message: typeof j.error.message === 'string' ? j.error.message.slice(0, 500) : '',
      requestId: typeof inner === 'string' ? inner : requestId,
    };
  } catch {
    return null;
  }
}

const CONNECT_ERRORS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED']);

/** `request` names the step: "POST graph.microsoft.com/v1.0/users/…/sendMail". */
export function toNetworkError(err: unknown, bodySent: boolean, clientRequestId: string, request: string): GraphNetworkError {
  let code = networkErrorCode(err);
  if (err instanceof undiciErrors.HeadersTimeoutError) code = 'UND_ERR_HEADERS_TIMEOUT';
  if (err instanceof undiciErrors.ConnectTimeoutError) code = 'UND_ERR_CONNECT_TIMEOUT';
  // Whatever the body's progress, these failures happen before Graph could have read a request.
  const beforeRequest = CONNECT_ERRORS.has(code);
  return new GraphNetworkError(code, bodySent && !beforeRequest, `${request}: ${describeNetworkError(err)}`, clientRequestId);
}

/** Graph's HTTP over the relay's one dispatcher (src/net/outbound.ts: a pool per origin, through the proxy where one is set), exact lengths, Graph's error JSON parsed. */

import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { errors as undiciErrors } from 'undici';
import { GraphNetworkError } from '../errors.js';
import { describeNetworkError, networkErrorCode } from '../net/network-errors.js';
import type { Outbound } from '../net/outbound.js';

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
  /** A 2xx answer's JSON object, when the request asked for it (draft ids, upload URLs). */
  json: Record<string, unknown> | null;
}

export type Body = AsyncIterable<Buffer> | Buffer | string | null;

export interface GraphRequest {
  method: 'POST' | 'DELETE' | 'PUT' | 'GET';
  /** A Graph path ("/v1.0/users/…"), or an absolute upload URL, used verbatim. */
  path: string;
  /** Null for upload URLs: they carry their own token, and Graph refuses an Authorization header there. */
  token: string | null;
  contentType: string | null;
  body: Body;
  length: number;
  /** Read the 2xx answer's JSON (drafts, upload sessions); sendMail's 202 has no body. */
  wantJson?: boolean;
  extraHeaders?: Record<string, string>;
}

/** Retry-After is seconds or an HTTP date (RFC 9110 section 10.2.3). */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return null;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : Math.max(0, t - now);
}

const MAX_BODY = 1024 * 1024;

export class GraphHttp {
  private readonly origin: string;

  /** `net` is shared by every account's GraphHttp; its owner (the relay, test-send) closes it. */
  constructor(
    readonly graphUrl: string,
    private readonly net: Outbound,
  ) {
    this.origin = new URL(graphUrl).origin;
  }

  /** One request; a failure without an HTTP answer throws GraphNetworkError, saying whether the body had gone out. */
  async request(r: GraphRequest): Promise<GraphResponse> {
    const url = r.path.startsWith('https://') ? new URL(r.path) : null;
    const origin = url ? url.origin : this.origin;
    const path = url ? `${url.pathname}${url.search}` : r.path;
    const clientRequestId = randomUUID();
    const headers: Record<string, string> = { 'client-request-id': clientRequestId, 'return-client-request-id': 'true', ...r.extraHeaders };
    if (r.token !== null) headers.authorization = `Bearer ${r.token}`;
    if (r.body !== null) headers['content-length'] = String(r.length);
    if (r.contentType) headers['content-type'] = r.contentType;
    // A buffer is handed over whole, so once the request is under way Graph may have all of it; a stream
    // is known to be sent only once it has ended.
    let sent = r.body === null || typeof r.body === 'string' || Buffer.isBuffer(r.body);
    let res;
    try {
      const payload = sent ? (r.body as Buffer | string | null) : Readable.from(tracked(r.body as AsyncIterable<Buffer>, () => (sent = true)), { objectMode: false });
      res = await this.net.dispatcher.request({ origin, method: r.method, path, headers, body: payload });
    } catch (err) {
      throw toNetworkError(err, sent, clientRequestId, `${r.method} ${new URL(origin).host}${path.split('?')[0]}${this.net.via(origin)}`);
    }
    const h = res.headers['request-id'];
    const requestId = (Array.isArray(h) ? h[0] : h) ?? null;
    const ok = res.statusCode >= 200 && res.statusCode < 300;
    if (ok && !r.wantJson) {
      await res.body.dump();
      return { status: res.statusCode, requestId, clientRequestId, retryAfterMs: null, error: null, json: null };
    }
    let text = '';
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) if (text.length < MAX_BODY) text += chunk.toString('utf8');
    } catch {
      // The status decides; a body cut short only loses detail.
    }
    return {
      status: res.statusCode,
      requestId,
      clientRequestId,
      retryAfterMs: ok ? null : parseRetryAfter(res.headers['retry-after']),
      error: ok ? null : parseGraphError(text, requestId),
      json: ok ? parseObject(text) : null,
    };
  }
}

async function* tracked(body: AsyncIterable<Buffer>, onEnd: () => void): AsyncGenerator<Buffer> {
  for await (const chunk of body) yield chunk;
  onEnd();
}

function parseObject(text: string): Record<string, unknown> | null {
  if (!text) return null;
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
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
function toNetworkError(err: unknown, bodySent: boolean, clientRequestId: string, request: string): GraphNetworkError {
  let code = networkErrorCode(err);
  if (err instanceof undiciErrors.HeadersTimeoutError) code = 'UND_ERR_HEADERS_TIMEOUT';
  if (err instanceof undiciErrors.ConnectTimeoutError) code = 'UND_ERR_CONNECT_TIMEOUT';
  // Whatever the body's progress, these failures happen before Graph could have read a request (a tunnel the proxy refused too).
  const beforeRequest = CONNECT_ERRORS.has(code) || code.startsWith('PROXY_');
  return new GraphNetworkError(code, bodySent && !beforeRequest, `${request}: ${describeNetworkError(err)}`, clientRequestId);
}

/** Graph calls whose 2xx answer matters (draft ids, upload URLs), and PUTs to pre-authenticated upload URLs. */

import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { Pool } from 'undici';
import { parseGraphError, toNetworkError, parseRetryAfter, type GraphClientOptions, type GraphResponse } from './client.js';

export interface JsonResponse extends GraphResponse {
  /** The parsed 2xx body, or null (empty body, or an error status). */
  json: Record<string, unknown> | null;
}

const MAX_BODY = 1024 * 1024;

export type Body = AsyncIterable<Buffer> | Buffer | string | null;

export class GraphRest {
  /** One pool per origin: Graph itself, and wherever upload URLs point (the Outlook REST host in production). */
  private readonly pools = new Map<string, Pool>();

  constructor(
    readonly graphUrl: string,
    private readonly opts: GraphClientOptions,
  ) {}

  private pool(origin: string): Pool {
    let p = this.pools.get(origin);
    if (!p) {
      p = new Pool(origin, {
        connections: this.opts.connections,
        pipelining: 1,
        connect: { timeout: this.opts.connectTimeoutMs },
        headersTimeout: this.opts.headersTimeoutMs,
        bodyTimeout: this.opts.bodyTimeoutMs,
        keepAliveTimeout: 30_000,
      });
      this.pools.set(origin, p);
    }
    return p;
  }

  /** A Graph call with a bearer token; `path` is relative to graphUrl. */
  call(method: 'POST' | 'DELETE', path: string, token: string, contentType: string | null, body: Body, length: number): Promise<JsonResponse> {
    return this.send(new URL(path, this.graphUrl), method, { authorization: `Bearer ${token}` }, contentType, body, length);
  }

  /** One chunk to an upload URL: used verbatim, and without Authorization (the URL carries its own token). */
  putChunk(uploadUrl: string, chunk: Buffer, first: number, total: number): Promise<JsonResponse> {
    const range = `bytes ${first}-${first + chunk.length - 1}/${total}`;
    return this.send(new URL(uploadUrl), 'PUT', { 'content-range': range }, 'application/octet-stream', chunk, chunk.length);
  }

  private async send(url: URL, method: 'POST' | 'DELETE' | 'PUT', extra: Record<string, string>, contentType: string | null, body: Body, length: number): Promise<JsonResponse> {
    const clientRequestId = randomUUID();
    const headers: Record<string, string> = { ...extra, 'client-request-id': clientRequestId, 'return-client-request-id': 'true' };
    if (body !== null) headers['content-length'] = String(length);
    if (contentType) headers['content-type'] = contentType;
    // Whether Graph may have the whole request: decides if a failure without an answer is ambiguous.
    let done = body === null;
    let res;
    try {
      // A Buffer body goes out as it is: copying it would double the memory of every 3.75 MB upload chunk.
      const source: AsyncIterable<Buffer> | null = body === null ? null : typeof body === 'string' ? once(Buffer.from(body)) : Buffer.isBuffer(body) ? once(body) : body;
      const payload = source === null ? null : Readable.from(track(source, () => (done = true)), { objectMode: false });
      res = await this.pool(url.origin).request({ method, path: `${url.pathname}${url.search}`, headers, body: payload });
    } catch (err) {
      throw toNetworkError(err, done, clientRequestId, `${method} ${url.host}${url.pathname}`);
    }
    const h = res.headers['request-id'];
    const requestId = (Array.isArray(h) ? h[0] : h) ?? null;
    let text = '';
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) if (text.length < MAX_BODY) text += chunk.toString('utf8');
    } catch {
      // An unreadable body loses detail only; the status decides.
    }
    const ok = res.statusCode >= 200 && res.statusCode < 300;
    let json: Record<string, unknown> | null = null;
    if (ok && text) {
      try {
        const v: unknown = JSON.parse(text);
        if (typeof v === 'object' && v !== null && !Array.isArray(v)) json = v as Record<string, unknown>;
      } catch {
        json = null;
      }
    }
    return {
      status: res.statusCode,
      requestId,
      clientRequestId,
      retryAfterMs: ok ? null : parseRetryAfter(res.headers['retry-after']),
      error: ok ? null : parseGraphError(text, requestId),
      json,
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close().catch(() => undefined)));
  }
}

async function* once(buf: Buffer): AsyncGenerator<Buffer> {
  yield buf;
}

async function* track(body: AsyncIterable<Buffer>, onDone: () => void): AsyncGenerator<Buffer> {
  for await (const chunk of body) yield chunk;
  onDone();
}

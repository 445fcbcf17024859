/** Small HTTP helpers: bounded body reading, JSON replies, Graph and AADSTS error shapes, abortable sleep. */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';

export interface BodyResult {
  /** The body, unless it exceeded the limit or the client went away. */
  body?: Buffer;
  received: number;
  tooLarge: boolean;
  /** The client disconnected before the end of the body. */
  aborted: boolean;
  /** We stopped draining an oversized body; the connection must be closed after answering. */
  capped: boolean;
}

/** Beyond this, an oversized body is no longer drained: answering and closing beats reading forever. */
const DRAIN_CAP_BYTES = 256 * 1024 * 1024;

/**
 * Reads the body, keeping at most `limit` bytes. An oversized body is drained (up to a cap) rather
 * than cut off, so that the client finishes writing and then reads our 413 instead of seeing a reset.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let tooLarge = false;
    let settled = false;
    const finish = (aborted: boolean, capped: boolean): void => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      const result: BodyResult = { received, tooLarge, aborted, capped };
      if (!tooLarge && !aborted) result.body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      chunks.length = 0;
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (!tooLarge && received > limit) {
        tooLarge = true;
        chunks.length = 0;
      }
      if (!tooLarge) chunks.push(chunk);
      else if (received > DRAIN_CAP_BYTES) {
        req.pause();
        finish(false, true);
      }
    };
    if (req.readableEnded) {
      finish(false, false);
      return;
    }
    req.on('data', onData);
    req.once('end', () => finish(false, false));
    req.once('error', () => finish(true, false));
    req.once('close', () => finish(!req.complete, false));
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const payload = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(payload.length) });
  res.end(payload);
}

export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { ...headers, 'Content-Length': '0' });
  res.end();
}

/** Drops the connection without an HTTP answer; RST where the socket type allows it. */
export function resetConnection(req: IncomingMessage): void {
  const socket = req.socket;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

export function graphErrorBody(code: string, message: string, requestId: string, clientRequestId: string): unknown {
  return {
    error: {
      code,
      message,
      innerError: { date: new Date().toISOString().replace(/\.\d{3}Z$/, ''), 'request-id': requestId, 'client-request-id': clientRequestId },
    },
  };
}

/** Entra ID error body: the AADSTS code is repeated in error_description and error_codes, as the real service does. */
export function aadErrorBody(error: string, aadsts: number, description: string, correlationId: string, origin: string): unknown {
  const traceId = randomUUID();
  const timestamp = new Date().toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
  return {
    error,
    error_description: `AADSTS${aadsts}: ${description} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
    error_codes: [aadsts],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `${origin}/error?code=${aadsts}`,
  };
}

/** Resolves after `ms`, or early (without throwing) when the emulator shuts down. */
export async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0) return;
  try {
    await delay(ms, undefined, { signal });
  } catch {
    // aborted by close(): fall through so the handler can finish against a dead socket
  }
}

/** Seconds or an HTTP date, as Graph sends in Retry-After. */
export function retryAfterHeader(value: number | string | undefined): Record<string, string> {
  return value === undefined ? {} : { 'Retry-After': String(value) };
}

export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

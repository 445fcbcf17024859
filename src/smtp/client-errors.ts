/** Errors any client can cause (a refused TLS handshake, a reset): named briefly, and logged at most once per address per interval. */

/** What the relay needs to know of an error that smtp-server reports for one connection. */
export interface ClientError {
  client: string;
  /** The TLS handshake failed (implicit TLS or STARTTLS). */
  tls: boolean;
  /** A short, bounded name: OpenSSL's reason in snake case (no_shared_cipher, wrong_version_number, …), timeout, closed, reset. */
  reason: string;
  /** One line for the log, no stack. */
  detail: string;
}

interface SmtpServerError extends Error {
  code?: string;
  reason?: string;
  remoteAddress?: string;
  meta?: { stage?: string; remoteAddress?: string; message?: string };
}

const RESETS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * smtp-server tags the errors of a connection with the client's address (err.remoteAddress, or
 * err.meta.remoteAddress on the implicit-TLS path) and a failed handshake with meta.stage "connect".
 * Anything without an address is the server's own (a port in use, no descriptors left): null.
 */
export function clientError(err: unknown): ClientError | null {
  const e = err as SmtpServerError;
  const client = e?.remoteAddress ?? e?.meta?.remoteAddress;
  if (!client) return null;
  const tls = e.meta?.stage === 'connect' || e.code === 'ERR_TLS_HANDSHAKE_TIMEOUT';
  return { client, tls, reason: reasonOf(e), detail: (e.reason ?? e.meta?.message ?? e.message ?? '').split('\n')[0]!.slice(0, 200) };
}

function reasonOf(e: SmtpServerError): string {
  const code = e.code ?? '';
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout';
  // smtp-server's name for a socket that closed before the handshake ended (a port probe, a TCP health check).
  if (code === 'SocketError') return 'closed';
  if (RESETS.has(code)) return 'reset';
  if (code.startsWith('ERR_SSL_')) return code.slice('ERR_SSL_'.length).toLowerCase();
  if (e.reason) return e.reason.toLowerCase().replace(/[^a-z0-9]+/g, '_').slice(0, 40);
  return 'other';
}

/** Bounds the table: a spray of addresses costs at most this many entries. */
const MAX_ENTRIES = 10_000;

/** At most one line per key per interval; the lines in between are counted and reported with the next one. */
export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  constructor(private readonly intervalMs: number) {}

  /** null: stay quiet; otherwise log, mentioning how many were left out since the last line. */
  take(key: string, now = Date.now()): { suppressed: number } | null {
    const e = this.last.get(key);
    if (e && now - e.at < this.intervalMs) {
      e.suppressed++;
      return null;
    }
    this.last.delete(key);
    this.last.set(key, { at: now, suppressed: 0 });
    if (this.last.size > MAX_ENTRIES) this.last.delete(this.last.keys().next().value!);
    return { suppressed: e?.suppressed ?? 0 };
  }
}

/**
 * Exchange's own record of a message (Graph message trace, v1.0 GET /admin/exchange/tracing/messageTraces,
 * application permission ExchangeMessageTrace.Read.All): one row per recipient with Exchange's delivery
 * status, found by Message-ID within a time window. Asked only when an administrator opens a message; never
 * part of delivery.
 */

import { request, type Dispatcher } from 'undici';
import { describeNetworkError } from '../net/network-errors.js';

export const TRACE_ROLE = 'ExchangeMessageTrace.Read.All';

export interface TraceRow {
  recipient: string;
  status: string;
  received: string | null;
  size: number | null;
  fromIP: string | null;
}

export type TraceResult = { status: 'ok'; rows: TraceRow[] } | { status: 'no-permission'; message: string } | { status: 'unavailable'; message: string };

/** The application roles a token carries (its payload is not verified here: only Graph's answer decides). */
export function tokenRoles(token: string): string[] | null {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { roles?: unknown };
    return Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string') : [];
  } catch {
    return null;
  }
}

const NO_PERMISSION = `the app registration has no ${TRACE_ROLE} (application permission, admin consent): granting it shows here, for each recipient, whether Exchange delivered, failed, quarantined or is still processing the message`;

/** OData string literal: single quotes doubled. */
function literal(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** `dispatcher`: the relay's Outbound (its proxy); without it, undici's global one. */
export async function messageTrace(graphUrl: string, token: string, q: { messageId: string; since: number; until: number }, dispatcher?: Dispatcher, timeoutMs = 10_000): Promise<TraceResult> {
  const roles = tokenRoles(token);
  if (roles !== null && roles.length > 0 && !roles.includes(TRACE_ROLE)) return { status: 'no-permission', message: NO_PERMISSION };
  const filter = `messageId eq ${literal(q.messageId)} and receivedDateTime ge ${new Date(q.since).toISOString()} and receivedDateTime le ${new Date(q.until).toISOString()}`;
  const url = `${graphUrl}/v1.0/admin/exchange/tracing/messageTraces?$filter=${encodeURIComponent(filter)}`;
  let res;
  try {
    res = await request(url, { method: 'GET', headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, ...(dispatcher ? { dispatcher } : {}) });
  } catch (err) {
    return { status: 'unavailable', message: `message trace: ${describeNetworkError(err)}` };
  }
  const text = await res.body.text();
  if (res.statusCode === 403) return { status: 'no-permission', message: NO_PERMISSION };
  if (res.statusCode !== 200) {
    let code = '';
    try {
      code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? '';
    } catch {
      // not JSON
    }
    return { status: 'unavailable', message: `message trace: Graph answered ${res.statusCode}${code ? ` ${code}` : ''}` };
  }
  const body = JSON.parse(text) as { value?: Record<string, unknown>[] };
  const rows = (body.value ?? []).map((v) => ({
    recipient: String(v.recipientAddress ?? ''),
    status: String(v.status ?? 'unknown'),
    received: typeof v.receivedDateTime === 'string' ? v.receivedDateTime : null,
    size: typeof v.size === 'number' ? v.size : null,
    fromIP: typeof v.fromIP === 'string' ? v.fromIP : null,
  }));
  return { status: 'ok', rows };
}

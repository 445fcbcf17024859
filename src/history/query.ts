/** A history search from text (the page's form, the command line's flags): the same parsing for both, so both give the same answers. */

import { MAX_LIMIT, type HistoryQuery, type MessageState } from './types.js';

const STATES: readonly MessageState[] = ['queued', 'delivered', 'dead', 'bounced', 'deleted'];
const UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

export class QueryError extends Error {}

/** "2026-01-10T09:00", "2026-01-10" (UTC), or how long ago: "30m", "2h", "7d". */
export function parseTime(text: string, now: number): number {
  const t = text.trim();
  const rel = /^(\d+)\s*([mhd])$/i.exec(t);
  if (rel) return now - Number(rel[1]) * UNITS[rel[2]!.toLowerCase()]!;
  const ms = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(t) ? `${t}T00:00:00Z` : t);
  if (!Number.isFinite(ms)) throw new QueryError(`"${text}" is not a time: use 2026-01-10, 2026-01-10T09:30Z or how long ago (30m, 2h, 7d)`);
  return ms;
}

export type QueryFields = Partial<Record<'qid' | 'messageId' | 'sender' | 'recipient' | 'client' | 'user' | 'state' | 'since' | 'until' | 'limit', string | undefined>>;

export function parseQuery(f: QueryFields, now = Date.now()): HistoryQuery {
  const q: HistoryQuery = {};
  const text = (v: string | undefined): string | undefined => (v === undefined || v.trim() === '' ? undefined : v.trim());
  for (const k of ['qid', 'messageId', 'sender', 'recipient', 'client', 'user'] as const) {
    const v = text(f[k]);
    if (v !== undefined) q[k] = v.slice(0, 320);
  }
  const state = text(f.state);
  if (state !== undefined) {
    if (!(STATES as readonly string[]).includes(state)) throw new QueryError(`state must be one of ${STATES.join(', ')} (got "${state}")`);
    q.state = state as MessageState;
  }
  const since = text(f.since);
  if (since !== undefined) q.since = parseTime(since, now);
  const until = text(f.until);
  if (until !== undefined) q.until = parseTime(until, now);
  const limit = text(f.limit);
  if (limit !== undefined) {
    const n = Number(limit);
    if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) throw new QueryError(`limit must be a whole number from 1 to ${MAX_LIMIT} (got "${limit}")`);
    q.limit = n;
  }
  return q;
}

/**
 * The Sent Items look-up: did Graph send a message whose attempt ended without an answer? Graph's sendMail
 * has no idempotency key, but every message it sends leaves a copy in the sending mailbox's Sent Items
 * (unless saveToSentItems is false), with the message's Message-ID as its internetMessageId.
 *
 *   GET /v1.0/users/{upn}/mailFolders/sentitems/messages?$filter=internetMessageId eq '<…>'&$select=id,internetMessageId,sentDateTime
 *
 * Least application permission: Mail.ReadBasic.All ("read basic mail in all mailboxes": every property but
 * the body, its preview, attachments and extended properties); Mail.Read and Mail.ReadWrite include it.
 */

import type { TokenProvider } from '../auth/token-provider.js';
import { tokenRoles } from '../auth/token-roles.js';
import { AttemptFailed, GraphAttempt } from './attempt.js';
import type { Verdict } from './classify.js';
import type { GraphHttp } from './http.js';
import { usersPath } from './planned-requests.js';

/** Application roles that allow the look-up, least first. */
export const LOOKUP_ROLES = ['Mail.ReadBasic.All', 'Mail.ReadBasic', 'Mail.Read', 'Mail.ReadWrite'] as const;

export type LookupResult =
  /** A copy is in Sent Items: Graph sent the message. */
  | { kind: 'found'; status: number; requestId: string | null }
  | { kind: 'not-found'; status: number; requestId: string | null }
  /** No look-up can tell (403, no role in the token, a refused query): the relay is at-least-once for this message. */
  | { kind: 'unavailable'; why: string; status?: number; code?: string; requestId?: string | null }
  /** The look-up itself failed for now (no answer, 5xx, throttled): try again later. */
  | { kind: 'failed'; verdict: Extract<Verdict, { kind: 'transient' }>; status?: number; code?: string; message?: string; requestId?: string | null };

export interface LookupQuery {
  mailbox: string;
  /** The Message-ID as internetMessageId holds it: `<left@right>`. */
  internetMessageId: string;
  /**
   * A copy sent before this (ms since the epoch) is another message that reused the Message-ID: it is not
   * taken as proof. The caller passes the message's acceptance time less an allowance for clock skew.
   */
  sentAfterMs: number;
}

/** Whether a route leaves a copy in Sent Items to look for: all but JSON sendMail, which the relay uses with saveToSentItems false. */
export function leavesSentItemsCopy(route: string): boolean {
  return route === 'mime' || route === 'large';
}

/** The look-up's path and query; the filter is OData (quotes doubled) inside a percent-encoded query. */
export function sentItemsQuery(mailbox: string, internetMessageId: string): string {
  const filter = `internetMessageId eq '${internetMessageId.replace(/'/g, "''")}'`;
  return `${usersPath(mailbox)}/mailFolders/sentitems/messages?$filter=${encodeURIComponent(filter)}&$select=id,internetMessageId,sentDateTime&$top=10`;
}

/** What the token's `roles` claim says about the look-up: granted, missing, or unknown (no claim: RBAC for Applications decides in Exchange). */
export function lookupPermission(token: string): 'granted' | 'missing' | 'unknown' {
  const roles = tokenRoles(token);
  if (roles === null) return 'unknown';
  return roles.some((r) => (LOOKUP_ROLES as readonly string[]).includes(r)) ? 'granted' : 'missing';
}

/** Looks the message up in the mailbox's Sent Items; never throws for Graph's answers. */
export async function findInSentItems(http: GraphHttp, tokens: TokenProvider, q: LookupQuery): Promise<LookupResult> {
  const attempt = new GraphAttempt(http, tokens, q.mailbox);
  try {
    if (lookupPermission(await attempt.currentToken()) === 'missing') return { kind: 'unavailable', why: 'no-role' };
    const res = await attempt.call('lookup', { method: 'GET', path: sentItemsQuery(q.mailbox, q.internetMessageId), contentType: null, body: () => null, length: 0, wantJson: true });
    const items = Array.isArray(res.json?.['value']) ? (res.json['value'] as unknown[]) : [];
    const sent = items.some((item) => isCopy(item, q));
    return { kind: sent ? 'found' : 'not-found', status: res.status, requestId: res.requestId };
  } catch (err) {
    if (!(err instanceof AttemptFailed)) throw err;
    const o = err.outcome;
    if (o.verdict.kind === 'transient') return { kind: 'failed', verdict: o.verdict, status: o.status, code: o.code, message: o.message, requestId: o.requestId };
    if (o.verdict.kind === 'permanent') return { kind: 'unavailable', why: o.status === 403 ? 'forbidden' : o.verdict.reason, status: o.status, code: o.code, requestId: o.requestId };
    throw err;
  }
}

function isCopy(item: unknown, q: LookupQuery): boolean {
  if (typeof item !== 'object' || item === null) return false;
  const { internetMessageId, sentDateTime } = item as Record<string, unknown>;
  if (typeof internetMessageId !== 'string' || internetMessageId.toLowerCase() !== q.internetMessageId.toLowerCase()) return false;
  const at = typeof sentDateTime === 'string' ? Date.parse(sentDateTime) : NaN;
  return Number.isNaN(at) || at >= q.sentAfterMs;
}

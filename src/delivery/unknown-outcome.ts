/**
 * Exactly once: an attempt whose outcome is unknown (the whole request went out and no answer came, a 5xx
 * came after it, or the relay died with it in flight) is not simply sent again. The message stays in the
 * queue, holding no Graph slot, and its mailbox's Sent Items is looked up `unknownOutcome.lookups` times,
 * `interval` apart: a copy there means Graph sent it; none by the last look-up, it is sent again. Where no
 * look-up can tell (no copy is kept, the permission is missing), it is retried as any failed attempt is,
 * at-least-once, and the log says so.
 */

import type { UnknownOutcomeConfig } from '../config/unknown-outcome.js';
import { leavesSentItemsCopy, type LookupQuery, type LookupResult } from '../graph/sent-items.js';
import { readHeaderFacts } from '../mime/headers.js';
import { internetMessageId } from '../mime/message-id.js';
import { isoTime } from '../observability/iso-time.js';
import type { Envelope, PendingLookup } from '../spool/envelope.js';
import { readHeaderSection } from '../spool/header-section.js';
import type { Spool } from '../spool/spool.js';

/**
 * A Sent Items copy sent more than this before the message was accepted is another message that reused its
 * Message-ID, not proof. The allowance is for the relay's clock running ahead of Exchange's; it is short,
 * since a copy wrongly taken for this message would lose it, where one wrongly refused costs a duplicate.
 */
export const CLOCK_SKEW_MS = 2 * 60_000;

export type FindSent = (env: Envelope, q: LookupQuery) => Promise<LookupResult>;

/** Why a message is sent again without proof that Graph did not send it. */
export type UncheckedWhy = 'lookups-off' | 'no-lookup' | 'no-sent-items-copy' | 'no-message-id' | 'no-role' | 'forbidden' | 'lookup-failing' | string;

export type Resolution =
  /** Graph sent it: a copy is in Sent Items. */
  | { kind: 'delivered'; found: Extract<LookupResult, { kind: 'found' }>; lookups: number }
  /** Look (again) at `dueAt`; nothing was sent. */
  | { kind: 'wait'; dueAt: number; lookups: number }
  /** Send it again: not found within the wait (`checked`), or no look-up can tell (`why`). */
  | { kind: 'send'; checked: true; lookups: number; waitedMs: number }
  | { kind: 'send'; checked: false; why: UncheckedWhy; status?: number; code?: string }
  /** The look-up failed for now: a transient verdict, retried like a failed attempt. */
  | { kind: 'failed'; failed: Extract<LookupResult, { kind: 'failed' }> };

export interface ResolverDeps {
  cfg: UnknownOutcomeConfig;
  /** Null when the way out has no Sent Items (capture mode, a test's Sender). */
  findSent: FindSent | null;
  /** Whether a message of this envelope is sent with a copy kept in Sent Items (false: maybe not, with sentItems discard). */
  keepsCopy: (env: Envelope) => boolean;
  spool: Spool;
  now: () => number;
}

export class OutcomeResolver {
  constructor(private readonly d: ResolverDeps) {}

  /**
   * An attempt ended with its outcome unknown: a pending look-up is put in the envelope (the caller records
   * it) and the first look-up is due after one interval; or, when no look-up can tell, why not.
   */
  afterUnknown(env: Envelope, route: string, reason: string, now: number): { lookUp: true; dueAt: number } | { lookUp: false; why: UncheckedWhy } {
    const why = this.d.cfg.lookups === 0 ? 'lookups-off' : this.d.findSent === null ? 'no-lookup' : !leavesSentItemsCopy(route) ? 'no-sent-items-copy' : null;
    if (why) return { lookUp: false, why };
    env.pendingLookup = { since: isoTime(now), lookups: 0, reason, route };
    return { lookUp: true, dueAt: now + this.d.cfg.intervalMs };
  }

  /** A message with a pending look-up is due: wait, look, and decide. The caller records what changed in the envelope. */
  async resolve(env: Envelope): Promise<Resolution> {
    const p = env.pendingLookup!;
    const { lookups, intervalMs } = this.d.cfg;
    const now = this.d.now();
    const since = Date.parse(p.since);
    const nextAt = since + (p.lookups + 1) * intervalMs;
    if (lookups > 0 && p.lookups < lookups && now < nextAt) return { kind: 'wait', dueAt: nextAt, lookups: p.lookups };
    if (lookups === 0 || this.d.findSent === null) return { kind: 'send', checked: false, why: lookups === 0 ? 'lookups-off' : 'no-lookup' };
    const id = internetMessageId(env.messageId ?? (await this.headerMessageId(env)));
    if (!id) return { kind: 'send', checked: false, why: 'no-message-id' };
    const r = await this.d.findSent(env, { mailbox: env.mailbox, internetMessageId: id, sentAfterMs: Date.parse(env.receivedAt) - CLOCK_SKEW_MS });
    p.lookups++;
    switch (r.kind) {
      case 'found':
        return { kind: 'delivered', found: r, lookups: p.lookups };
      case 'not-found':
        if (now < since + lookups * intervalMs) return { kind: 'wait', dueAt: Math.max(since + (p.lookups + 1) * intervalMs, now + 1), lookups: p.lookups };
        // After a crash the route is not known: with sentItems discard, Graph may have sent it without a copy.
        if (p.route === undefined && !this.d.keepsCopy(env)) return { kind: 'send', checked: false, why: 'no-sent-items-copy' };
        return { kind: 'send', checked: true, lookups: p.lookups, waitedMs: now - since };
      case 'unavailable':
        return { kind: 'send', checked: false, why: r.why, status: r.status, code: r.code };
      case 'failed':
        // Failed look-ups count too, so the wait stays bounded; past twice the look-ups, the message goes again unchecked.
        if (p.lookups >= 2 * lookups) return { kind: 'send', checked: false, why: 'lookup-failing', status: r.status, code: r.code };
        return { kind: 'failed', failed: r };
    }
  }

  /** The Message-ID of a message queued without one in its envelope (an older spool, a bounce the relay made). */
  private async headerMessageId(env: Envelope): Promise<string | null> {
    return readHeaderFacts(await readHeaderSection(this.d.spool, 'queue', env)).messageId;
  }
}

/** What a pending look-up says in the log. */
export function lookupFields(p: PendingLookup | undefined): Record<string, unknown> {
  return p ? { lookups: p.lookups, unknownSince: p.since, unknownReason: p.reason } : {};
}

/**
 * Exchange's message trace when someone looks at a message: cached per message, and rate-limited well under
 * Graph's own limit for this API (100 requests per 5 minutes per tenant), so a page left open cannot use it up.
 */

import type { Dispatcher } from 'undici';
import type { TokenProvider } from '../auth/token-provider.js';
import { messageTrace, type TraceResult } from '../graph/message-trace.js';
import type { MessageStory } from '../history/types.js';
import type { TraceAnswer } from '../web/source.js';

const CACHE_MS = 5 * 60_000;
const CACHE_MAX = 500;
const WINDOW_MS = 5 * 60_000;
const PER_WINDOW = 30;
/** Exchange takes a while to record a message; the window starts a little before the relay accepted it. */
const BEFORE_MS = 15 * 60_000;
const AFTER_MS = 2 * 86_400_000;

/** Where a message's account asks Graph: its endpoint, its tokens and the relay's Outbound (the proxy). */
export interface TraceTarget {
  graphUrl: string;
  tokens: TokenProvider;
  dispatcher?: Dispatcher;
}

export interface TraceLookupDeps {
  /** The account's target; null in capture mode (no Graph). `account` null: the default account. */
  target: (account: string | null) => TraceTarget | null;
  enabled: boolean;
  now?: () => number;
  /** Replaced in tests. */
  fetch?: typeof messageTrace;
}

export class TraceLookup {
  private readonly cache = new Map<string, { at: number; answer: TraceAnswer }>();
  private readonly asked: number[] = [];
  private readonly now: () => number;

  constructor(private readonly d: TraceLookupDeps) {
    this.now = d.now ?? Date.now;
  }

  async lookup(story: MessageStory | null): Promise<TraceAnswer> {
    if (!this.d.enabled) return { status: 'unavailable', message: 'history.messageTrace is off' };
    if (!story) return { status: 'not-found', message: 'no such message in the history' };
    const target = this.d.target(story.account);
    if (!target) return { status: 'unavailable', message: 'capture mode: no Graph, so no Exchange message trace' };
    if (!story.messageId) return { status: 'unavailable', message: 'the message had no Message-ID (or it is not in the history): Exchange traces by Message-ID' };
    const now = this.now();
    const hit = this.cache.get(story.qid);
    if (hit && now - hit.at < CACHE_MS) return hit.answer;
    while (this.asked.length > 0 && now - this.asked[0]! > WINDOW_MS) this.asked.shift();
    if (this.asked.length >= PER_WINDOW) {
      const wait = Math.ceil((WINDOW_MS - (now - this.asked[0]!)) / 1000);
      return { status: 'unavailable', message: `message trace asked ${PER_WINDOW} times in 5 minutes: try again in ${wait} s` };
    }
    this.asked.push(now);
    let r: TraceResult;
    try {
      const token = await target.tokens.getToken();
      r = await (this.d.fetch ?? messageTrace)(target.graphUrl, token, { messageId: story.messageId, since: story.at - BEFORE_MS, until: Math.min(now, story.at + AFTER_MS) }, target.dispatcher);
    } catch (err) {
      r = { status: 'unavailable', message: `message trace: ${(err as Error).message}` };
    }
    const answer: TraceAnswer = r.status === 'ok' ? { status: r.rows.length ? 'ok' : 'not-found', rows: r.rows, cachedAt: now, ...(r.rows.length ? {} : { message: 'Exchange has no trace of it yet (traces appear minutes after delivery)' }) } : { status: r.status, message: r.message, cachedAt: now };
    if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(story.qid, { at: now, answer });
    return answer;
  }
}

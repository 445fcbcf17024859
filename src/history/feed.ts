/** The delivery engine's events as history records: each attempt's outcome, Graph's status, code and request-id. */

import type { DeliveryEvents, UnknownResolution } from '../delivery/engine.js';
import type { SendResult } from '../delivery/senders.js';
import type { Envelope } from '../spool/envelope.js';
import type { History } from './history.js';
import type { EventRecord } from './types.js';

function fromResult(r: SendResult): Partial<EventRecord> {
  const out: Partial<EventRecord> = { route: r.route };
  if (r.status !== undefined) out.status = r.status;
  if (r.code !== undefined) out.code = r.code;
  if (r.requestId) out.requestId = r.requestId;
  return out;
}

function fromLastError(env: Envelope): Partial<EventRecord> {
  const e = env.lastError;
  if (!e) return {};
  const out: Partial<EventRecord> = { reason: e.reason, detail: e.message };
  if (e.status !== undefined) out.status = e.status;
  if (e.code !== undefined) out.code = e.code;
  if (e.requestId) out.requestId = e.requestId;
  return out;
}

function errorText(p: Partial<EventRecord>): string {
  return [p.status, p.code ?? p.reason, p.detail].filter((x) => x !== undefined && x !== '').join(' ');
}

/** What each step of an unknown outcome's resolution means, in the message's story. */
const UNKNOWN_TEXT: Record<UnknownResolution, string> = {
  looking: 'Graph may have sent it (no answer after the whole request): looking for it in Sent Items before sending it again',
  found: 'found in Sent Items: Graph had sent it; not sent again',
  resent: 'not in Sent Items within the wait: sent again',
  unchecked: 'sent again without a Sent Items look-up (none possible): it may arrive twice',
};

/** Every outcome, as one event of the message's story; final ones also as its device's last error. */
export function historyDeliveryEvents(h: History, now: () => number = Date.now): DeliveryEvents {
  return {
    queued: (env) => h.known(env),
    vanished: (id) => {
      h.record({ t: 'event', qid: id, at: now(), kind: 'vanished', state: 'deleted', detail: 'removed by a queue tool before its attempt' });
      h.done(id);
    },
    delivered: (env, r, latencyMs) => {
      h.record({ t: 'event', qid: env.id, at: now(), kind: 'delivered', state: 'delivered', attempt: env.attempts, ...fromResult(r), detail: `delivered ${Math.round(latencyMs)} ms after acceptance` });
      h.done(env.id);
    },
    deferred: (env, r) => {
      const reason = r.verdict.kind === 'delivered' ? 'unknown' : r.verdict.reason;
      const ev: EventRecord = { t: 'event', qid: env.id, at: now(), kind: 'deferred', state: null, attempt: env.attempts, ...fromResult(r), reason };
      if (r.message) ev.detail = r.message.slice(0, 500);
      h.record(ev);
      h.failure(env, errorText(ev), false);
    },
    deadLettered: (env, reason) => {
      const ev: EventRecord = { t: 'event', qid: env.id, at: now(), kind: 'dead-lettered', state: 'dead', attempt: env.attempts, ...fromLastError(env), reason };
      h.record(ev);
      h.failure(env, errorText(ev), true);
      h.done(env.id);
    },
    bounced: (env, dsn) => {
      const ev: EventRecord = { t: 'event', qid: env.id, at: now(), kind: 'bounced', state: 'bounced', attempt: env.attempts, ...fromLastError(env), dsn: dsn.id };
      h.record(ev);
      h.failure(env, errorText(ev), true);
      h.done(env.id);
    },
    graphResponse: () => undefined,
    unknownOutcome: (env, resolution) => {
      h.record({ t: 'event', qid: env.id, at: now(), kind: 'outcome-unknown', state: null, attempt: env.attempts, reason: resolution, detail: UNKNOWN_TEXT[resolution] });
    },
  };
}

/** Several listeners of the delivery events (metrics, history), called in order. */
export function fanOut(...all: DeliveryEvents[]): DeliveryEvents {
  return {
    queued: (env) => all.forEach((e) => e.queued(env)),
    vanished: (id) => all.forEach((e) => e.vanished(id)),
    delivered: (env, r, ms) => all.forEach((e) => e.delivered(env, r, ms)),
    deferred: (env, r) => all.forEach((e) => e.deferred(env, r)),
    deadLettered: (env, reason) => all.forEach((e) => e.deadLettered(env, reason)),
    bounced: (env, dsn) => all.forEach((e) => e.bounced(env, dsn)),
    graphResponse: (r, env) => all.forEach((e) => e.graphResponse(r, env)),
    unknownOutcome: (env, resolution) => all.forEach((e) => e.unknownOutcome(env, resolution)),
  };
}

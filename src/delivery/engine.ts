/** One delivery attempt: read the envelope, send, and record the outcome in the spool and the log. */

import type { DeliveryConfig } from '../config/config.js';
import { isoTime } from '../observability/iso-time.js';
import type { Logger } from '../observability/logger.js';
import type { AttemptOutcome, Scheduled } from '../scheduler/scheduled.js';
import type { InflightJournal } from '../spool/journal.js';
import type { Spool } from '../spool/spool.js';
import { accountOf, type Envelope, type LastError } from '../spool/envelope.js';
import type { MessageData } from '../mime/message-file.js';
import type { Bouncer } from './bounce.js';
import { notReached, type Verdict } from '../graph/classify.js';
import type { SendResult, Sender } from './senders.js';
import { lookupFields, OutcomeResolver } from './unknown-outcome.js';

/** What became of an attempt whose outcome was unknown: looked for, found in Sent Items, sent again after the wait, or sent again unchecked. */
export type UnknownResolution = 'looking' | 'found' | 'resent' | 'unchecked';

export interface DeliveryEvents {
  /** A message the engine created itself (a delivery status notification) entered the queue. */
  queued(env: Envelope): void;
  /** A message left the queue without an attempt: a queue tool removed it meanwhile. */
  vanished(id: string): void;
  delivered(env: Envelope, r: SendResult, latencyMs: number): void;
  deferred(env: Envelope, r: SendResult): void;
  deadLettered(env: Envelope, reason: string): void;
  bounced(env: Envelope, dsn: Envelope): void;
  graphResponse(r: SendResult, env?: Envelope): void;
  unknownOutcome(env: Envelope, resolution: UnknownResolution): void;
}

const noop: DeliveryEvents = { queued() {}, vanished() {}, delivered() {}, deferred() {}, deadLettered() {}, bounced() {}, graphResponse() {}, unknownOutcome() {} };

export interface DeliveryDeps {
  spool: Spool;
  sender: Sender;
  cfg: DeliveryConfig;
  log: Logger;
  events?: DeliveryEvents;
  /** Null when bounces are off (no bounces.postmaster). */
  bouncer?: Bouncer | null;
  now?: () => number;
  random?: () => number;
  /** Where attempts are recorded as they start and end (spool/journal.ts); null: no crash knowledge (tests). */
  journal?: InflightJournal | null;
}

export class DeliveryEngine {
  private readonly spool: Spool;
  private readonly sender: Sender;
  private readonly cfg: DeliveryConfig;
  private readonly log: Logger;
  private readonly events: DeliveryEvents;
  private readonly bouncer: Bouncer | null;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly journal: InflightJournal | null;
  private readonly resolver: OutcomeResolver;

  constructor(deps: DeliveryDeps) {
    ({ spool: this.spool, sender: this.sender, cfg: this.cfg, log: this.log } = deps);
    this.events = deps.events ?? noop;
    this.bouncer = deps.bouncer ?? null;
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
    this.journal = deps.journal ?? null;
    const findSent = this.sender.findSent?.bind(this.sender) ?? null;
    const keepsCopy = (env: Envelope): boolean => this.sender.keepsCopy?.(env) ?? true;
    this.resolver = new OutcomeResolver({ cfg: this.cfg.unknownOutcome, findSent, keepsCopy, spool: this.spool, now: this.now });
  }

  /** The scheduler's runner: never throws; whatever happens, the message stays owned by the spool. */
  attempt = async (msg: Scheduled, release: () => void = () => undefined): Promise<AttemptOutcome> => {
    let env: Envelope;
    let data: MessageData;
    try {
      ({ env, data } = await this.spool.load('queue', msg.id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.events.vanished(msg.id); // deleted by a queue tool
        return { kind: 'done' };
      }
      this.log.error({ qid: msg.id, event: 'spool-read-failed', err }, 'cannot read the spooled message; retrying later');
      return { kind: 'retry', dueAt: this.now() + 60_000 };
    }
    // An attempt started whose outcome could not be recorded (a spool error): as unknown as after a crash.
    if (!env.pendingLookup && this.journal?.isOpen(env.id)) env.pendingLookup = { since: isoTime(this.now()), lookups: 0, reason: 'unrecorded' };
    if (env.pendingLookup) {
      const outcome = await this.lookUp(env).catch((err: unknown): AttemptOutcome => {
        this.log.error({ qid: env.id, account: accountOf(env), event: 'record-failed', err }, 'cannot look up or record the unknown outcome; retrying later');
        return { kind: 'retry', dueAt: this.now() + 60_000 };
      });
      if (outcome) return outcome;
    }
    const r = await this.send(env, data);
    if (r === null) return { kind: 'retry', dueAt: this.now() + 60_000 };
    // Nothing reached Graph: not one of the message's attempts (its retry schedule does not advance).
    if (notReached(r.verdict)) env.attempts--;
    // Graph is done with this request: its slot can go to the next message while the spool is updated.
    // Not after a throttle, whose mailbox pause must be in place before anything else is sent there.
    if (!(r.verdict.kind === 'transient' && (r.verdict.throttle || r.verdict.mailboxBlocked))) release();
    if (r.status !== undefined || r.code !== undefined) this.events.graphResponse(r, env);
    try {
      const outcome = await this.record(env, r);
      this.journal?.finished(env.id);
      return outcome;
    } catch (err) {
      this.log.error({ qid: env.id, account: accountOf(env), event: 'record-failed', err }, 'cannot record delivery outcome; retrying later');
      return { kind: 'retry', dueAt: this.now() + 60_000 };
    }
  };

  /**
   * Sends, with the attempt's start written to the in-flight journal (and fsynced) right before the first
   * request that can submit the message; when that write fails nothing is sent, and this returns null.
   */
  private async send(env: Envelope, data: MessageData): Promise<SendResult | null> {
    let journalError: unknown = null;
    const journal = this.journal;
    const beforeSubmit = journal ? (): Promise<void> => journal.started(env.id).catch((err: unknown) => Promise.reject((journalError = err))) : undefined;
    env.attempts++;
    try {
      return await this.sender.send(env, data, beforeSubmit);
    } catch (err) {
      if (journalError !== null) {
        env.attempts--;
        this.log.error({ qid: env.id, account: accountOf(env), event: 'journal-failed', err: journalError }, 'cannot record the attempt in the in-flight journal: nothing sent, retrying later');
        return null;
      }
      // A bug or a local I/O error, not Graph's answer: keep the message and try again later.
      this.log.error({ qid: env.id, account: accountOf(env), event: 'attempt-failed', err }, 'delivery attempt failed locally');
      return { verdict: { kind: 'transient', reason: 'local-error' }, route: 'mime', message: (err as Error).message };
    }
  }

  /**
   * A message whose last attempt ended unknown is due: wait, look it up in Sent Items, and decide. Returns the
   * attempt's outcome, or null to send it (again) now, in this attempt.
   */
  private async lookUp(env: Envelope): Promise<AttemptOutcome | null> {
    const before = env.pendingLookup!.lookups;
    const res = await this.resolver.resolve(env);
    const fields = { qid: env.id, account: accountOf(env), mailbox: env.mailbox, ...lookupFields(env.pendingLookup) };
    switch (res.kind) {
      case 'wait':
        if (res.lookups !== before) await this.spool.updateEnvelope('queue', env);
        return { kind: 'retry', dueAt: res.dueAt };
      case 'delivered': {
        await this.spool.remove('queue', env.id);
        this.journal?.finished(env.id); // an attempt whose end could not be recorded ends here
        const latencyMs = this.now() - Date.parse(env.receivedAt);
        const r: SendResult = { verdict: { kind: 'delivered' }, route: (env.pendingLookup!.route as SendResult['route'] | undefined) ?? 'mime', status: res.found.status, requestId: res.found.requestId };
        this.log.info({ ...fields, event: 'delivered', resolvedBy: 'sent-items', route: r.route, attempt: env.attempts, latencyMs, requestId: res.found.requestId }, 'message delivered: Graph had sent it (a copy is in Sent Items); not sending it again');
        this.events.unknownOutcome(env, 'found');
        this.events.delivered(env, r, latencyMs);
        return { kind: 'done' };
      }
      case 'send':
        if (res.checked) {
          this.log.info({ ...fields, event: 'lookup-not-found', waitedMs: res.waitedMs }, `not in Sent Items after ${res.lookups} look-up(s) over ${Math.round(res.waitedMs / 1000)} s: Graph did not send it; sending it again`);
          this.events.unknownOutcome(env, 'resent');
        } else {
          this.unchecked(env, res.why, { ...fields, status: res.status, code: res.code });
        }
        delete env.pendingLookup;
        return null;
      case 'failed': {
        const f = res.failed;
        return this.record(env, { verdict: f.verdict, route: 'lookup', status: f.status, code: f.code, message: f.message, requestId: f.requestId });
      }
    }
  }

  /** Sent again without proof that Graph did not send it: at-least-once for this message, and said so. */
  private unchecked(env: Envelope, why: string, fields: Record<string, unknown>): void {
    env.possibleDuplicate = true;
    this.log.warn({ ...fields, event: 'possible-duplicate', why }, `Graph may have sent the message and no Sent Items look-up can tell (${why}): sending it again, which may deliver it twice`);
    this.events.unknownOutcome(env, 'unchecked');
  }

  private logFields(env: Envelope, r: SendResult): Record<string, unknown> {
    return {
      qid: env.id,
      account: accountOf(env),
      mailbox: env.mailbox,
      rcpts: env.rcptTo.length,
      size: env.size,
      attempt: env.attempts,
      route: r.route,
      status: r.status,
      code: r.code,
      requestId: r.requestId,
      clientRequestId: r.clientRequestId,
    };
  }

  private lastError(v: Exclude<Verdict, { kind: 'delivered' }>, r: SendResult): LastError {
    const e: LastError = { at: new Date(this.now()).toISOString(), kind: v.kind, reason: v.reason, message: r.message ?? v.reason };
    if (r.status !== undefined) e.status = r.status;
    if (r.code !== undefined) e.code = r.code;
    if (r.requestId) e.requestId = r.requestId;
    return e;
  }

  private async record(env: Envelope, r: SendResult): Promise<AttemptOutcome> {
    const v = r.verdict;
    const now = this.now();
    if (v.kind === 'delivered') {
      await this.spool.remove('queue', env.id);
      const latencyMs = now - Date.parse(env.receivedAt);
      this.log.info({ ...this.logFields(env, r), event: 'delivered', latencyMs, possibleDuplicate: env.possibleDuplicate }, 'message delivered');
      this.events.delivered(env, r, latencyMs);
      return { kind: 'done' };
    }
    env.lastError = this.lastError(v, r);
    if (v.kind === 'permanent') return this.deadLetter(env, r, v.reason);
    // Graph or Entra ID unreachable: the message is held by the outage (scheduler), its schedule untouched.
    const held = notReached(v);

    if (v.outcomeUnknown) {
      const next = this.resolver.afterUnknown(env, r.route, v.reason, now);
      if (next.lookUp) {
        env.nextAttemptAt = isoTime(next.dueAt);
        await this.spool.updateEnvelope('queue', env);
        this.log.warn({ ...this.logFields(env, r), event: 'outcome-unknown', reason: v.reason, error: r.message, lookupInMs: next.dueAt - now }, `Graph may have sent the message (${v.reason}): looking for it in Sent Items before sending it again`);
        this.events.deferred(env, r);
        this.events.unknownOutcome(env, 'looking');
        return { kind: 'retry', dueAt: next.dueAt, unreachable: v.reason.startsWith('network-') };
      }
      this.unchecked(env, next.why, this.logFields(env, r));
    }
    let outcome: AttemptOutcome;
    let delayMs: number;
    if (v.mailboxBlocked) {
      delayMs = this.cfg.retry.mailboxBlockedDelayMs;
      outcome = { kind: 'blocked', until: now + delayMs };
      this.log.error({ ...this.logFields(env, r), event: 'mailbox-blocked' }, `mailbox ${env.mailbox} cannot send (${v.reason}); pausing it for ${Math.round(delayMs / 60000)} min`);
    } else if (v.throttle) {
      delayMs = v.throttle.retryAfterMs ?? this.cfg.retry.throttleBackoffBaseMs;
      outcome = { kind: 'throttled', retryAfterMs: v.throttle.retryAfterMs };
    } else {
      const schedule = this.cfg.retry.scheduleMs;
      const base = schedule[Math.min(Math.max(env.attempts, 1) - 1, schedule.length - 1)]!;
      delayMs = v.retryAfterMs ?? Math.round(base * (0.9 + 0.2 * this.random()));
      const unreachable = v.reason.startsWith('network-') || v.reason === 'token-unavailable';
      outcome = { kind: 'retry', dueAt: now + delayMs, unreachable, ...(held ? { hold: true } : {}) };
    }
    if (now + delayMs - Date.parse(env.receivedAt) > this.cfg.retry.maxQueueLifetimeMs) {
      env.lastError = { ...env.lastError, kind: 'permanent', reason: 'expired', message: `still undeliverable after ${env.attempts} attempts in the maximum queue lifetime; last error: ${env.lastError.message}` };
      return this.deadLetter(env, r, 'expired');
    }
    if (!held) env.nextAttemptAt = new Date(now + delayMs).toISOString();
    const warning = await this.bouncer?.delayed(env, now).catch((err: unknown) => {
      this.log.error({ qid: env.id, account: accountOf(env), event: 'delay-notice-failed', err }, 'could not queue the delay notice');
      return null;
    });
    await this.spool.updateEnvelope('queue', env);
    this.log.warn({ ...this.logFields(env, r), event: 'deferred', reason: v.reason, ...(held ? { held: true } : { retryInMs: delayMs }), error: r.message }, held ? HELD : 'delivery deferred');
    this.events.deferred(env, r);
    if (!warning) return outcome;
    this.log.info({ qid: env.id, account: accountOf(env), event: 'delay-notice', dsnQid: warning.id, to: env.mailFrom }, 'delay notice queued for the sender');
    this.events.queued(warning);
    return { ...outcome, enqueue: [{ id: warning.id, mailbox: warning.mailbox, account: accountOf(warning) }] };
  }

  /**
   * Permanent failure or expiry: the message goes to dead/ first (so nothing is lost whatever happens
   * next); then, when a notice is owed and possible, it is bounced and the original removed, as Postfix does.
   */
  private async deadLetter(env: Envelope, r: SendResult, reason: string): Promise<AttemptOutcome> {
    await this.spool.move('queue', 'dead', env);
    let dsn: Envelope | null = null;
    try {
      dsn = (await this.bouncer?.failed(env, 'dead')) ?? null;
    } catch (err) {
      this.log.error({ qid: env.id, account: accountOf(env), event: 'bounce-failed', err }, 'could not queue the bounce; the message stays in the dead-letter folder');
    }
    if (dsn) {
      await this.spool.remove('dead', env.id);
      this.log.warn({ ...this.logFields(env, r), event: 'bounced', reason, dsnQid: dsn.id, to: env.mailFrom, error: env.lastError?.message }, 'message failed; delivery status notification queued for the sender');
      this.events.bounced(env, dsn);
      this.events.queued(dsn);
      return { kind: 'done', enqueue: [{ id: dsn.id, mailbox: dsn.mailbox, account: accountOf(dsn) }] };
    }
    const why = env.isBounce ? 'a bounce is never bounced' : env.mailFrom === '' ? 'null sender <>' : this.bouncer ? 'no bounces.postmaster mailbox' : 'bounces off';
    this.log.error({ ...this.logFields(env, r), event: 'dead-lettered', reason, noBounce: why, error: env.lastError?.message }, 'message moved to the dead-letter folder');
    this.events.deadLettered(env, reason);
    return { kind: 'done' };
  }
}

const HELD = 'delivery deferred: Graph or Entra ID cannot be reached; the message waits for it (not counted as an attempt)';

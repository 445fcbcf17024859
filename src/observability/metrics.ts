/** The relay's Prometheus metrics (prom-client): counters fed by events, queue gauges computed per scrape. */

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeliveryEvents, UnknownResolution } from '../delivery/engine.js';
import type { SendResult } from '../delivery/senders.js';
import type { FleetEvents, FleetMode } from '../fleet/fleet-slots.js';
import { accountOf, type Envelope } from '../spool/envelope.js';
import { QueueTracker, deadLetterStats } from './queue-stats.js';

/** Mailbox labels: this many mailboxes by queue size, then "other", so a bad day cannot explode the series count. */
export const TOP_MAILBOXES = 20;
/** Any label fed by outside values (Graph error codes, reasons) keeps at most this many distinct values. */
const MAX_LABEL_VALUES = 50;

/** accepted → 202, from 50 ms (an idle relay) to a day (a message that waited out a long outage). */
const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400];

/** What a scrape reads from the running relay. */
export interface MetricsOptions {
  /** The spool's dead/ folder, counted at each scrape; none: no dead-letter gauges (tests). */
  deadDir?: string;
  processMetrics?: boolean;
  /** The device view and the history's writer, read at each scrape (none: history off). */
  visibility?: () => VisibilityFigures;
}

export interface VisibilityFigures {
  devicesKnown: number;
  devicesSilent: number;
  historyWritten: number;
  historyFailed: number;
  historyDropped: number;
}

/** A pause that starts within this long after the last one ended continues it (a probe between two throttles). */
const PAUSE_CONTINUES_MS = 60_000;

class BoundedLabel {
  private readonly seen = new Set<string>();
  value(v: string): string {
    if (this.seen.has(v)) return v;
    if (this.seen.size >= MAX_LABEL_VALUES) return 'other';
    this.seen.add(v);
    return v;
  }
}


export class RelayMetrics {
  readonly registry = new Registry();
  readonly queue = new QueueTracker();
  private readonly deadDir: string | null;
  /** Each paused mailbox's pause end, so an extended pause counts only the extension. */
  private readonly pausedUntil = new Map<string, number>();
  /** When each mailbox's current run of pauses began. */
  private readonly pausedSince = new Map<string, number>();
  private readonly visibility: (() => VisibilityFigures) | null;
  private readonly counted = { historyWritten: 0, historyFailed: 0, historyDropped: 0 };
  private readonly labels = { reason: new BoundedLabel(), deadReason: new BoundedLabel(), code: new BoundedLabel(), rejection: new BoundedLabel(), listener: new BoundedLabel(), tlsReason: new BoundedLabel() };

  private readonly c = (name: string, help: string, labelNames: string[] = []): Counter => new Counter({ name, help, labelNames, registers: [this.registry] });
  private readonly g = (name: string, help: string, labelNames: string[] = []): Gauge => new Gauge({ name, help, labelNames, registers: [this.registry] });

  readonly received = this.c('relay_messages_received_total', 'Messages accepted over SMTP and committed to the spool, by Graph account', ['account']);
  readonly delivered = this.c('relay_messages_delivered_total', 'Messages Graph accepted (202), by route and account', ['route', 'account']);
  readonly deferred = this.c('relay_messages_deferred_total', 'Delivery attempts that ended in a retry later, by reason and account', ['reason', 'account']);
  readonly bounced = this.c('relay_messages_bounced_total', 'Messages that failed permanently or expired and were returned to their sender with a delivery status notification, by account', ['account']);
  readonly deadLettered = this.c('relay_messages_dead_lettered_total', 'Messages moved to the dead-letter folder, by reason and account', ['reason', 'account']);
  readonly queueMessages = this.g('relay_queue_messages', 'Messages in the spool, by state (queued, dead)', ['state']);
  readonly queueActive = this.g('relay_queue_active_messages', 'Queued messages in the active set (the scheduler holds them; the rest waits on disk until there is room, delivery.activeLimit)');
  readonly queueOldest = this.g('relay_queue_oldest_message_age_seconds', 'Age of the oldest message in the spool, by state (0 when empty)', ['state']);
  readonly mailboxMessages = this.g('relay_queue_mailbox_messages', `Queued messages of the active set per sending mailbox (top ${TOP_MAILBOXES}, the rest as "other")`, ['mailbox']);
  readonly mailboxOldest = this.g('relay_queue_mailbox_oldest_age_seconds', `Age of the oldest queued message of the active set per sending mailbox (top ${TOP_MAILBOXES}, the rest as "other")`, ['mailbox']);
  readonly latency = new Histogram({ name: 'relay_delivery_latency_seconds', help: 'Time from SMTP acceptance to Graph 202', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly graphResponses = this.c('relay_graph_responses_total', 'Graph sendMail answers, by HTTP status, Graph error code and account', ['status', 'code', 'account']);
  readonly graphThrottled = this.c('relay_graph_throttled_total', 'Graph answers that asked the relay to slow down (429, 503, throttling codes), by account', ['account']);
  readonly graphPaused = this.c('relay_graph_paused_seconds_total', 'Seconds mailboxes have been paused because of throttling or blocks');
  readonly fleetMode = this.g('relay_fleet_mode', 'This replica\'s way of keeping Graph\'s limits with the fleet: 1 for the current mode (shared on Redis, or fallback to a static share)', ['replica', 'mode']);
  readonly fleetFallbacks = this.c('relay_fleet_fallbacks_total', 'Times this replica lost Redis and fell back to its static share of the limits', ['replica']);
  readonly fleetSlots = this.g('relay_fleet_slots_held', 'Graph slots this replica holds now, per account and mailbox (fleet mode)', ['replica', 'account', 'mailbox']);
  readonly tokens = this.c('relay_token_acquisitions_total', 'Graph tokens obtained from Entra ID or the managed identity endpoint (not cache hits), by result and account', ['result', 'account']);
  readonly credentialExpiry = this.g('relay_credential_expiry_timestamp_seconds', 'When each account\'s credential expires (a certificate\'s notAfter, or graph.clientSecretExpires), as a Unix time; absent when unknown', ['account']);
  readonly smtpSessions = this.c('relay_smtp_sessions_total', 'SMTP connections, by listener', ['listener']);
  readonly smtpRejections = this.c('relay_smtp_rejections_total', 'SMTP commands or messages the relay refused, by reason', ['reason']);
  readonly smtpAuthFailures = this.c('relay_smtp_auth_failures_total', 'Failed SMTP AUTH attempts');
  readonly smtpTlsFailures = this.c('relay_smtp_tls_handshake_failures_total', 'TLS handshakes that failed (implicit TLS or STARTTLS), by listener and reason (OpenSSL\'s, e.g. no_shared_cipher, wrong_version_number; timeout; closed)', ['listener', 'reason']);
  readonly devicesKnown = this.g('relay_devices_known', 'Devices (AUTH users, else client addresses) the device view knows');
  readonly devicesSilent = this.g('relay_devices_silent', 'Devices that sent before and have been silent longer than their usual gap allows (history.devices)');
  readonly historyWritten = this.c('relay_history_records_written_total', 'Delivery history records written to the history file');
  readonly historyFailed = this.c('relay_history_write_failures_total', 'Delivery history records that could not be written (mail is not affected)');
  readonly historyDropped = this.c('relay_history_records_dropped_total', 'Delivery history records dropped because the history writer fell too far behind');
  readonly mailboxesPaused = this.g('relay_mailboxes_paused', 'Mailboxes paused right now (throttling or blocks)');
  readonly longestPause = this.g('relay_mailbox_longest_pause_seconds', 'How long the longest-paused mailbox has been paused without a break (0 when none is)');
  readonly possibleDuplicates = this.c('relay_possible_duplicates_total', 'Messages sent again after an attempt Graph may have taken, without a Sent Items look-up to tell (at-least-once: sentItems discard, no permission)');
  readonly unknownOutcomes = this.c('relay_unknown_outcomes_total', 'Attempts whose outcome was unknown (no answer after the whole request, a 5xx after it, a crash), by resolution and account: looking (a look-up pending), found (Graph had sent it: not sent again), resent (not in Sent Items within the wait), unchecked (sent again without a look-up)', ['resolution', 'account']);

  constructor(opts: MetricsOptions = {}) {
    this.deadDir = opts.deadDir ?? null;
    this.visibility = opts.visibility ?? null;
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    // Label values that must exist from the start, so that rate() and alerts see a zero, not nothing.
    for (const state of ['queued', 'dead']) {
      this.queueMessages.set({ state }, 0);
      this.queueOldest.set({ state }, 0);
    }
  }

  /** A configured account: its series exist from the start, so rate() and alerts see a zero. */
  account(name: string): void {
    this.received.inc({ account: name }, 0);
    for (const result of ['success', 'failure']) this.tokens.inc({ result, account: name }, 0);
    for (const resolution of ['looking', 'found', 'resent', 'unchecked']) this.unknownOutcomes.inc({ resolution, account: name }, 0);
  }

  /** A credential's expiry, as it is now (null: unknown, e.g. a managed identity; the series is removed). */
  credentialExpiryAt(account: string, expiresAtMs: number | null): void {
    if (expiresAtMs === null) this.credentialExpiry.remove({ account });
    else this.credentialExpiry.set({ account }, Math.floor(expiresAtMs / 1000));
  }


  /** `receivedAtMs`, when the caller has it, spares parsing env.receivedAt (on the accept path of every message). */
  queued(env: Pick<Envelope, 'id' | 'mailbox' | 'receivedAt'>, receivedAtMs?: number): void {
    this.queue.add(env.id, env.mailbox, receivedAtMs ?? env.receivedAt);
  }

  /** `active`: the message went into the active set; else it waits on disk until there is room. */
  accepted(env: Envelope, receivedAtMs?: number, active = true): void {
    this.received.inc({ account: accountOf(env) });
    if (active) this.queued(env, receivedAtMs);
    else this.queue.addOnDisk(1, receivedAtMs ?? Date.parse(env.receivedAt));
  }

  rejected(reason: string): void {
    this.smtpRejections.inc({ reason: this.labels.rejection.value(reason) });
    // The SMTP front door reports a failed AUTH as the rejection reason "auth" (src/smtp/server.ts onAuth).
    if (reason === 'auth') this.smtpAuthFailures.inc();
  }

  session(listener: string): void {
    this.smtpSessions.inc({ listener: this.labels.listener.value(listener) });
  }

  tlsHandshakeFailed(listener: string, reason: string): void {
    this.smtpTlsFailures.inc({ listener: this.labels.listener.value(listener), reason: this.labels.tlsReason.value(reason) });
  }

  /** From the scheduler's onPause: counted when the pause starts (as the scheduler's own total does). */
  paused(mailbox: string, ms: number, now = Date.now()): void {
    const until = now + ms;
    const prev = this.pausedUntil.get(mailbox) ?? 0;
    if (until <= prev) return;
    this.graphPaused.inc((until - Math.max(now, prev)) / 1000);
    if (!this.pausedSince.has(mailbox) || now - prev > PAUSE_CONTINUES_MS) this.pausedSince.set(mailbox, now);
    this.pausedUntil.set(mailbox, until);
    for (const [m, u] of this.pausedUntil) if (u <= now) this.pausedUntil.delete(m);
  }

  tokenResult(ok: boolean, account = 'default'): void {
    this.tokens.inc({ result: ok ? 'success' : 'failure', account });
  }

  readonly fleetEvents: FleetEvents = {
    mode: (mode: FleetMode, replica: string) => {
      this.fleetMode.set({ replica, mode }, 1);
      this.fleetMode.set({ replica, mode: mode === 'shared' ? 'fallback' : 'shared' }, 0);
      if (mode === 'fallback') this.fleetFallbacks.inc({ replica });
    },
    held: (account: string, mailbox: string, slots: number, replica: string) => {
      if (slots > 0) this.fleetSlots.set({ replica, account, mailbox }, slots);
      else this.fleetSlots.remove({ replica, account, mailbox });
    },
  };

  readonly deliveryEvents: DeliveryEvents = {
    queued: (env: Envelope) => this.queued(env),
    vanished: (id: string) => this.queue.remove(id),
    delivered: (env: Envelope, r: SendResult, latencyMs: number) => {
      this.queue.remove(env.id);
      this.delivered.inc({ route: r.route, account: accountOf(env) });
      this.latency.observe(Math.max(0, latencyMs) / 1000);
    },
    // The DSN itself reaches the tracker through the `queued` event.
    bounced: (env: Envelope) => {
      this.queue.remove(env.id);
      this.bounced.inc({ account: accountOf(env) });
    },
    deferred: (env: Envelope, r: SendResult) => {
      this.deferred.inc({ reason: this.labels.reason.value(r.verdict.kind === 'delivered' ? 'unknown' : r.verdict.reason), account: accountOf(env) });
    },
    unknownOutcome: (env: Envelope, resolution: UnknownResolution) => {
      this.unknownOutcomes.inc({ resolution, account: accountOf(env) });
      if (resolution === 'unchecked') this.possibleDuplicates.inc();
    },
    deadLettered: (env: Envelope, reason: string) => {
      this.queue.remove(env.id);
      this.deadLettered.inc({ reason: this.labels.deadReason.value(reason), account: accountOf(env) });
    },
    graphResponse: (r: SendResult, env?: Envelope) => {
      const account = env ? accountOf(env) : 'default';
      this.graphResponses.inc({ status: r.status === undefined ? 'none' : String(r.status), code: this.labels.code.value(r.code ?? 'none'), account });
      if (r.verdict.kind === 'transient' && r.verdict.throttle) this.graphThrottled.inc({ account });
    },
  };

  /** Sets the queue gauges from memory and one readdir of dead/; called right before each scrape. */
  async refresh(now = Date.now()): Promise<void> {
    this.refreshVisibility(now);
    if (!this.deadDir) return;
    const q = this.queue.snapshot(now, TOP_MAILBOXES);
    const dead = await deadLetterStats(this.deadDir, now);
    this.queueMessages.set({ state: 'queued' }, q.messages);
    this.queueActive.set(this.queue.active);
    this.queueOldest.set({ state: 'queued' }, q.oldestAgeSeconds);
    this.queueMessages.set({ state: 'dead' }, dead.messages);
    this.queueOldest.set({ state: 'dead' }, dead.oldestAgeSeconds);
    // Mailboxes come and go: start from empty so a drained mailbox's series disappears.
    this.mailboxMessages.reset();
    this.mailboxOldest.reset();
    for (const m of q.mailboxes) {
      this.mailboxMessages.set({ mailbox: m.mailbox }, m.messages);
      this.mailboxOldest.set({ mailbox: m.mailbox }, m.oldestAgeSeconds);
    }
  }

  /** Devices, the history writer's counts, and mailboxes paused for long. */
  private refreshVisibility(now: number): void {
    let paused = 0;
    let longest = 0;
    for (const [m, since] of this.pausedSince) {
      const until = this.pausedUntil.get(m) ?? 0;
      if (until > now) {
        paused++;
        longest = Math.max(longest, (now - since) / 1000);
      } else if (now - until > PAUSE_CONTINUES_MS) this.pausedSince.delete(m);
    }
    this.mailboxesPaused.set(paused);
    this.longestPause.set(longest);
    const v = this.visibility?.();
    if (!v) return;
    this.devicesKnown.set(v.devicesKnown);
    this.devicesSilent.set(v.devicesSilent);
    for (const k of ['historyWritten', 'historyFailed', 'historyDropped'] as const) {
      if (v[k] > this.counted[k]) this[k].inc(v[k] - this.counted[k]);
      this.counted[k] = v[k];
    }
  }

  async render(): Promise<{ contentType: string; body: string }> {
    await this.refresh();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

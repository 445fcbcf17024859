/** Wiring by construction: every part gets what it needs when it is made, so a relay (or any part) can be built in-process. */

import path from 'node:path';
import type { MsalTokenProvider } from '../auth/token-provider.js';
import { graphAccounts } from '../config/accounts.js';
import type { RelayConfig } from '../config/config.js';
import { Bouncer } from '../delivery/bounce.js';
import { DeliveryEngine } from '../delivery/engine.js';
import { FleetSlots } from '../fleet/fleet-slots.js';
import { CaptureSender, GraphSender, type Sender } from '../delivery/senders.js';
import { AdminServer } from '../observability/admin.js';
import type { Logger } from '../observability/logger.js';
import { RelayMetrics, type VisibilityFigures } from '../observability/metrics.js';
import { ReadinessCheck } from '../observability/readiness.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { SmtpListener } from '../smtp/listener.js';
import { SpoolLock } from '../spool/control.js';
import { ActiveSet } from './active-set.js';
import { InflightJournal } from '../spool/journal.js';
import { accountOfMailbox, GraphAccounts } from './accounts.js';
import { Spool } from '../spool/spool.js';
import type { Envelope } from '../spool/envelope.js';
import { passThrough } from './passthrough.js';
import { Relay } from './relay.js';
import { RelayStatus, type RelayStatusDeps } from './status.js';
import { TraceLookup } from './trace.js';
import { isLoopback } from '../config/visibility.js';
import { fanOut, historyDeliveryEvents } from '../history/feed.js';
import { History } from '../history/history.js';
import { PageAuth } from '../web/auth.js';
import { StatusPage } from '../web/routes.js';

/** What a relay is made with besides its configuration; tests replace any of them. */
export interface RelayDeps {
  log: Logger;
  /**
   * The way out. Default: the Graph adapter (delivery.mode graph, with `tokens`) or capture files (capture).
   * A test may give any Sender, e.g. one that records messages, and then no tokens are made.
   */
  sender?: Sender;
  /** The default account's Graph tokens; default: msal with graph.* (graph mode only). */
  tokens?: MsalTokenProvider | null;
  now?: () => number;
  metrics?: RelayMetrics;
}

export function createRelay(cfg: RelayConfig, deps: RelayDeps): Relay {
  const { log } = deps;
  const now = deps.now ?? Date.now;
  const spool = new Spool(cfg.spool.directory);
  // The delivery history and device view: fed by the events below, written by a worker thread, off the SMTP path.
  const history = cfg.history.enabled ? new History({ cfg: cfg.history, log, now }) : null;
  const metrics = deps.metrics ?? new RelayMetrics({ deadDir: spool.deadDir, visibility: history ? () => visibilityFigures(history, now()) : undefined });
  for (const a of graphAccounts(cfg)) metrics.account(a.name);
  const out = deps.sender ? { sender: deps.sender, accounts: null } : wayOut(cfg, log, metrics, spool, deps.tokens);
  const bouncer = cfg.bounces.postmaster ? new Bouncer(spool, cfg.bounces, cfg.hostname, postmasterAccount(cfg)) : null;
  const events = history ? fanOut(metrics.deliveryEvents, historyDeliveryEvents(history, now)) : metrics.deliveryEvents;
  const journal = new InflightJournal(cfg.spool.directory);
  const engine = new DeliveryEngine({ spool, sender: out.sender, cfg: cfg.delivery, log, events, bouncer, now, journal });
  const d = cfg.delivery;
  // A replica of a fleet: Graph's per-mailbox limits shared with the other replicas on Redis.
  const fleet = cfg.fleet.redisUrl ? new FleetSlots({ cfg: cfg.fleet, perMailboxConcurrency: d.perMailboxConcurrency, messagesPerMinute: d.messagesPerMinute, log, events: metrics.fleetEvents, now }) : null;
  // The active set remembers what left lately, so a scan racing an attempt's end does not load it again.
  const scheduler = makeScheduler(cfg, log, metrics, now, engine, fleet, (id) => active.forgotten(id));
  const active = new ActiveSet({ spool, scheduler, metrics, log, now, limit: d.activeLimit, loaded: history ? (env) => history.known(env) : undefined });
  const listeners = cfg.listeners.map(
    (l) =>
      new SmtpListener(l, cfg, spool, log, {
        // Into the active set when it has room; else the message waits on disk for the scan.
        accepted: (env, receivedAtMs, facts) => {
          history?.accepted(env, receivedAtMs, facts);
          metrics.accepted(env, receivedAtMs, active.offer(env, now()));
        },
        rejected: (reason, session, reply) => {
          metrics.rejected(reason);
          if (session) history?.refused(session.user ? String(session.user) : null, session.remoteAddress, reason, reply ?? reason);
        },
        session: (listener) => metrics.session(listener),
        tlsFailure: (listener, reason) => metrics.tlsHandshakeFailed(listener, reason),
        passthrough: l.passthrough ? (env, data) => passThrough(out.sender, log, env, data) : undefined,
        sizeLimit: (account) => out.accounts?.sizeLimit(account) ?? null,
      }),
  );
  // Set by the relay when it stops; readiness reads it (made first, so nothing is wired after construction).
  const state = { stopping: false };
  const captureDir = cfg.delivery.mode === 'capture' ? cfg.delivery.captureDirectory : null;
  const tokens = out.accounts?.tokenProviders() ?? (deps.tokens ? [{ name: 'default', tokens: deps.tokens }] : []);
  const fleetCheck = fleet ? { fleet: () => `${fleet.status().mode} (replica ${cfg.fleet.replica})` } : {};
  const readiness = new ReadinessCheck({ probeDir: spool.tmpDir, tokens: null, accounts: tokens, captureDir, stopping: () => state.stopping, ...fleetCheck });
  const page = statusPage(cfg, { spool, scheduler, active, metrics, history, log, now }, out.accounts);
  const fleetView = fleet ? async () => ({ ...fleet.status(), leases: await fleet.fleetLeases() }) : null;
  const admin = cfg.admin.enabled ? new AdminServer(metrics, readiness, log, page, fleetView) : null;
  const lock = new SpoolLock(path.join(cfg.spool.directory, 'relay.lock'));
  return new Relay({ cfg, log, now, state, spool, journal, lock, scheduler, active, listeners, metrics, admin, accounts: out.accounts, history, fleet });
}

/** The scheduler with delivery.* limits, its outage and pause events logged and counted. */
function makeScheduler(cfg: RelayConfig, log: Logger, metrics: RelayMetrics, now: () => number, engine: DeliveryEngine, fleet: FleetSlots | null, forgotten: (id: string) => void): Scheduler {
  const d = cfg.delivery;
  return new Scheduler(
    {
      perMailboxConcurrency: d.perMailboxConcurrency,
      globalConcurrency: d.globalConcurrency,
      messagesPerMinute: d.messagesPerMinute,
      throttleBackoffBaseMs: d.retry.throttleBackoffBaseMs,
      throttleBackoffMaxMs: d.retry.throttleBackoffMaxMs,
      outageProbeIntervalMs: d.retry.outageProbeIntervalMs,
      now,
      // The active set remembers what left lately, so a scan racing an attempt's end does not load it again.
      onForget: forgotten,
      onOutage: (pauseMs, failures, held) => {
        if (pauseMs > 0) log.warn({ event: 'graph-unreachable', pauseMs, failures, held }, `Graph cannot be reached: no new attempts for ${pauseMs} ms, then one probe; ${held} message(s) wait for it`);
        else log.info({ event: 'graph-reachable', released: held }, `Graph answers again: delivery resumes, ${held} held message(s) due now`);
      },
      onPause: (mailbox, ms, reason, account) => {
        metrics.paused(`${account}/${mailbox}`, ms);
        log.warn({ event: 'mailbox-paused', account, mailbox, pauseMs: ms, reason }, `mailbox ${mailbox} (account ${account}) paused for ${ms} ms (${reason})`);
      },
      ...(fleet ? { slots: fleet } : {}),
    },
    engine.attempt,
  );
}

/** The status page on the admin listener: what it shows comes from the relay's parts; Exchange's trace through each message's account. */
function statusPage(cfg: RelayConfig, parts: Omit<RelayStatusDeps, 'trace'>, accounts: GraphAccounts | null): StatusPage {
  const trace = new TraceLookup({ target: (account) => accounts?.traceTarget(account ?? cfg.defaultAccount ?? 'default') ?? null, enabled: cfg.history.messageTrace, now: parts.now });
  return new StatusPage(new PageAuth(cfg.admin.auth, isLoopback(cfg.admin.host), parts.now), new RelayStatus({ ...parts, trace }), parts.log);
}

function visibilityFigures(h: History, now: number): VisibilityFigures {
  return { devicesKnown: h.devices.size, devicesSilent: h.devices.silentCount(now), historyWritten: h.stats.written, historyFailed: h.stats.failed, historyDropped: h.stats.dropped };
}

/** A notice goes out from bounces.postmaster, so through that mailbox's account (its domain, else the default), else the message's own. */
function postmasterAccount(cfg: RelayConfig): (original: Envelope) => string | undefined {
  const chosen = accountOfMailbox(cfg, cfg.bounces.postmaster ?? '');
  return (original) => chosen ?? original.account;
}

/** Graph mode: an adapter and token provider per account over one Outbound; capture mode: files, no Graph at all. */
function wayOut(cfg: RelayConfig, log: Logger, metrics: RelayMetrics, spool: Spool, given: MsalTokenProvider | null | undefined): { sender: Sender; accounts: GraphAccounts | null } {
  const opts = { sentItems: cfg.delivery.sentItems, mailboxes: cfg.mailboxes };
  if (cfg.delivery.mode === 'capture') {
    const capture = new CaptureSender(cfg.delivery.captureDirectory, cfg.graph.graphUrl, { ...opts, maxRequestBytes: cfg.graph.maxRequestBytes, largeMessages: cfg.delivery.largeMessages });
    return { sender: capture, accounts: null };
  }
  const accounts = new GraphAccounts(cfg, log, metrics, spool.tmpDir, given);
  return { sender: new GraphSender((name) => accounts.adapter(name), opts), accounts };
}

/** A relay's life: start (spool recovery, listeners, the queue loaded), queue tools while it runs, and a graceful stop. */

import { mkdir } from 'node:fs/promises';
import type { RelayConfig } from '../config/config.js';
import { StartError } from '../errors.js';
import type { History } from '../history/history.js';
import type { AdminServer } from '../observability/admin.js';
import type { Logger } from '../observability/logger.js';
import type { RelayMetrics } from '../observability/metrics.js';
import { writable } from '../observability/readiness.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import type { SmtpListener } from '../smtp/listener.js';
import { ControlServer, controlDir, type SpoolLock } from '../spool/control.js';
import { recoverInflight, type InflightJournal } from '../spool/journal.js';
import type { Spool } from '../spool/spool.js';
import type { GraphAccounts } from './accounts.js';
import type { FleetSlots } from '../fleet/fleet-slots.js';
import { handleControl } from './control.js';
import type { ActiveSet } from './active-set.js';

export interface RelayParts {
  cfg: RelayConfig;
  log: Logger;
  now: () => number;
  /** Shared with readiness, which says "shutting down" once `stopping` is set. */
  state: { stopping: boolean };
  spool: Spool;
  /** Attempts in flight, recorded as they start: what a crash left unresolved is looked up at start. */
  journal: InflightJournal;
  lock: SpoolLock;
  scheduler: Scheduler;
  /** The queued messages the scheduler holds, read in from queue/ as it drains. */
  active: ActiveSet;
  listeners: SmtpListener[];
  metrics: RelayMetrics;
  admin: AdminServer | null;
  /** Graph mode: the accounts, their tokens and the one Outbound; null in capture mode (or with a test's Sender). */
  accounts: GraphAccounts | null;
  history: History | null;
  /** A replica of a fleet: the slots it shares with the others on Redis; null: a single relay. */
  fleet?: FleetSlots | null;
}

export class Relay {
  readonly spool: Spool;
  readonly scheduler: Scheduler;
  readonly active: ActiveSet;
  readonly listeners: SmtpListener[];
  readonly metrics: RelayMetrics;
  private readonly control: ControlServer;
  private stopped: Promise<void> | null = null;

  constructor(private readonly p: RelayParts) {
    ({ spool: this.spool, scheduler: this.scheduler, active: this.active, listeners: this.listeners, metrics: this.metrics } = p);
    this.control = new ControlServer(
      controlDir(p.cfg.spool.directory),
      (req) => handleControl({ spool: p.spool, scheduler: p.scheduler, active: p.active, metrics: p.metrics, log: p.log, now: p.now, history: p.history }, req),
      (err) => p.log.error({ event: 'control-error', err }, 'queue control channel error'),
    );
  }

  async start(): Promise<void> {
    const { cfg, log } = this.p;
    await this.spool.ensureDirs();
    if (cfg.delivery.mode === 'capture') await checkCaptureDir(cfg.delivery.captureDirectory);
    await this.p.lock.acquire();
    // Only tmp/ before SMTP listens; queue/ and dead/ are read after, in the background (ActiveSet.start).
    const removedTmp = await this.spool.openForAccepting();
    for (const qid of await recoverInflight(this.spool, this.p.journal, this.p.now())) {
      log.warn({ qid, event: 'outcome-unknown', reason: 'crash' }, 'the relay stopped with an attempt of this message in flight: looking for it in Sent Items before sending it again');
    }
    // The history is a record, not the mail: a file it cannot open is logged and the relay runs without it.
    await this.p.history?.start().catch((err: unknown) => log.error({ event: 'history-failed', err }, 'the delivery history cannot be opened; mail is not affected'));
    if (this.p.admin) {
      // Before SMTP: probes and scrapes work while the queue loads. Its own event name: "listening" means SMTP.
      const a = await this.p.admin.listen(cfg.admin.host, cfg.admin.port);
      log.info({ event: 'admin-listening', address: a.address, port: a.port }, `admin HTTP (/healthz /readyz /metrics) on ${a.address}:${a.port}`);
    }
    // Bounded, and never fatal: without Redis the replica starts on its static share of the limits.
    await this.p.fleet?.start();
    for (const [i, l] of this.listeners.entries()) {
      const addr = await l.listen();
      const name = cfg.listeners[i]!.name;
      log.info({ event: 'listening', listener: name, address: addr.address, port: addr.port }, `SMTP listener ${name} on ${addr.address}:${addr.port}`);
    }
    this.p.accounts?.start();
    await this.control.start();
    // Everything in queue/ is scheduled again, as the active set has room: a restart retries at once,
    // like `postqueue -f`. The state files are repaired and the queue counted first (names only).
    const scan = await this.p.active.start();
    const { removedOrphans, completedMoves } = scan;
    if (removedTmp || removedOrphans || completedMoves) log.info({ event: 'spool-recovered', removedTmp, removedOrphans, completedMoves }, 'spool recovered after an unclean stop');
    const queued = scan.queued + this.scheduler.size();
    log.info({ event: 'started', queued, activeLimit: this.p.active.limit, delivery: cfg.delivery.mode }, 'relay started');
    log.flush(); // the start-up story goes out now, not at the next batch
  }

  /** SIGHUP: every TLS listener reads its certificate files again now, and so does every certificate credential. */
  reloadCertificates(): void {
    for (const l of this.listeners) l.reloadCertificates();
    this.p.accounts?.reloadCredentials();
  }

  /** Graceful stop: no new sessions; transactions and attempts in progress finish within the grace period. */
  stop(graceMs = 30_000): Promise<void> {
    this.stopped ??= this.drain(graceMs);
    return this.stopped;
  }

  private async drain(graceMs: number): Promise<void> {
    const { log } = this.p;
    this.p.state.stopping = true;
    log.info({ event: 'stopping', graceMs }, 'stopping: no new connections');
    this.p.active.stop();
    const draining = this.scheduler.stop();
    const closing = Promise.all(this.listeners.map((l) => l.close(graceMs, draining)));
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), graceMs);
      timer.unref();
    });
    const res = await Promise.race([Promise.all([closing, draining]).then(() => 'done' as const), expired]);
    clearTimeout(timer);
    if (res === 'expired') log.warn({ event: 'grace-expired', inFlight: this.scheduler.inFlight() }, 'grace period over; unfinished work stays in the spool');
    await this.p.accounts?.close(res === 'expired').catch(() => undefined);
    await this.p.fleet?.close();
    this.control.stop();
    await this.p.journal.close();
    await this.spool.close();
    await this.p.lock.release();
    await this.p.history?.close();
    // Last: /healthz answers and /readyz says "shutting down" for the whole drain.
    await this.p.admin?.close();
    log.info({ event: 'stopped', queued: this.scheduler.size() }, 'relay stopped');
  }
}

/** Capture mode writes every message there: a folder it cannot write would take mail and never deliver it. */
async function checkCaptureDir(dir: string): Promise<void> {
  const why = await mkdir(dir, { recursive: true }).then(
    () => writable(dir),
    (err: NodeJS.ErrnoException) => err.code ?? err.message,
  );
  if (why) throw new StartError(`the capture folder ${dir} is not writable (${why}): set delivery.captureDirectory or RELAY_CAPTURE_DIR to a writable folder (in a container, a volume)`);
}

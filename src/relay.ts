/** Wires the parts together: spool, SMTP listeners, scheduler and delivery; starts and stops them. */

import { MsalTokenProvider } from './auth/token-provider.js';
import type { RelayConfig } from './config/config.js';
import { Bouncer } from './delivery/bounce.js';
import { DeliveryEngine } from './delivery/engine.js';
import { CaptureSender, GraphMimeSender, GraphSender, type Sender } from './delivery/senders.js';
import { GraphClient } from './graph/client.js';
import { LargeMessageRoute } from './graph/large-message.js';
import { GraphRest } from './graph/rest.js';
import { UploadBudget } from './graph/upload-budget.js';
import { AdminServer } from './observability/admin.js';
import type { Logger } from './observability/logger.js';
import { RelayMetrics } from './observability/metrics.js';
import { ReadinessCheck, writable } from './observability/readiness.js';
import { mkdir } from 'node:fs/promises';
import { Scheduler } from './scheduler/scheduler.js';
import { SmtpListener } from './smtp/server.js';
import { ControlServer, SpoolLock, controlDir, type ControlRequest, type ControlResponse } from './spool/control.js';
import { matches, requeued } from './spool/queue-tools.js';
import { Spool } from './spool/spool.js';
import path from 'node:path';

const LOAD_BATCH = 256;

/** The relay cannot start, for a reason an administrator can fix; the message says how. */
export class StartError extends Error {
  override readonly name = 'StartError';
}

export class Relay {
  readonly spool: Spool;
  readonly scheduler: Scheduler;
  readonly engine: DeliveryEngine;
  readonly listeners: SmtpListener[];
  readonly tokens: MsalTokenProvider | null;
  private readonly graph: GraphClient | null;
  private readonly rest: GraphRest | null = null;
  private stopping: Promise<void> | null = null;
  private readonly lock: SpoolLock;
  private readonly control: ControlServer;
  readonly metrics = new RelayMetrics();
  private readonly admin: AdminServer | null;

  constructor(
    readonly cfg: RelayConfig,
    readonly log: Logger,
  ) {
    this.spool = new Spool(cfg.spool.directory);
    this.lock = new SpoolLock(path.join(cfg.spool.directory, 'relay.lock'));
    this.control = new ControlServer(controlDir(cfg.spool.directory), (req) => this.handleControl(req), (err) => log.error({ event: 'control-error', err }, 'queue control channel error'));
    let sender: Sender;
    if (cfg.delivery.mode === 'capture') {
      this.graph = null;
      this.tokens = null;
      sender = new CaptureSender(cfg.delivery.captureDirectory, cfg.graph.graphUrl, { maxRequestBytes: cfg.graph.maxRequestBytes, sentItems: cfg.delivery.sentItems, mailboxes: cfg.mailboxes, largeMessages: cfg.delivery.largeMessages });
    } else {
      this.graph = new GraphClient(cfg.graph.graphUrl, {
        connectTimeoutMs: cfg.graph.connectTimeoutMs,
        headersTimeoutMs: cfg.graph.headersTimeoutMs,
        bodyTimeoutMs: cfg.graph.bodyTimeoutMs,
        connections: cfg.delivery.globalConcurrency,
      });
      this.tokens = new MsalTokenProvider(cfg.graph, log, (ok) => this.metrics.tokenResult(ok));
      const clientOpts = { connectTimeoutMs: cfg.graph.connectTimeoutMs, headersTimeoutMs: cfg.graph.headersTimeoutMs, bodyTimeoutMs: cfg.graph.bodyTimeoutMs, connections: cfg.delivery.globalConcurrency };
      this.rest = new GraphRest(cfg.graph.graphUrl, clientOpts);
      const large = cfg.delivery.largeMessages
        ? new LargeMessageRoute({ rest: this.rest, tokens: this.tokens, budget: new UploadBudget(cfg.graph.uploadBudgetBytes, cfg.graph.uploadBudgetWindowMs), tmpDir: this.spool.tmpDir })
        : null;
      sender = new GraphSender(new GraphMimeSender(this.graph, this.tokens), this.rest, this.tokens, large, { maxRequestBytes: cfg.graph.maxRequestBytes, sentItems: cfg.delivery.sentItems, mailboxes: cfg.mailboxes }, log);
    }
    this.engine = new DeliveryEngine(this.spool, sender, cfg.delivery, log);
    this.engine.events = this.metrics.deliveryEvents;
    if (cfg.bounces.postmaster) {
      this.engine.bouncer = new Bouncer(this.spool, cfg.bounces, cfg.hostname, (dsn) => {
        this.metrics.queued(dsn);
        this.scheduler.add(dsn.id, dsn.mailbox, Date.now());
      });
    }
    this.scheduler = new Scheduler(
      {
        perMailboxConcurrency: cfg.delivery.perMailboxConcurrency,
        globalConcurrency: cfg.delivery.globalConcurrency,
        messagesPerMinute: cfg.delivery.messagesPerMinute,
        throttleBackoffBaseMs: cfg.delivery.retry.throttleBackoffBaseMs,
        throttleBackoffMaxMs: cfg.delivery.retry.throttleBackoffMaxMs,
      },
      this.engine.attempt,
    );
    this.metrics.attach({ has: (id) => this.scheduler.has(id), deadDir: this.spool.deadDir });
    const captureDir = cfg.delivery.mode === 'capture' ? cfg.delivery.captureDirectory : null;
    const readiness = new ReadinessCheck({ probeDir: this.spool.tmpDir, tokens: this.tokens, captureDir, stopping: () => this.stopping !== null });
    this.admin = cfg.admin.enabled ? new AdminServer(this.metrics, readiness, log) : null;
    this.scheduler.onOutage = (pauseMs, failures) => {
      if (pauseMs > 0) log.warn({ event: 'graph-unreachable', pauseMs, failures }, `Graph cannot be reached: no new attempts for ${pauseMs} ms, then one probe`);
      else log.info({ event: 'graph-reachable' }, 'Graph answers again: delivery resumes');
    };
    this.scheduler.onPause = (mailbox, ms, reason) => {
      this.metrics.paused(mailbox, ms);
      log.warn({ event: 'mailbox-paused', mailbox, pauseMs: ms, reason }, `mailbox ${mailbox} paused for ${ms} ms (${reason})`);
    };
    this.listeners = cfg.listeners.map(
      (l) =>
        new SmtpListener(l, cfg, this.spool, log, {
          accepted: (env, receivedAtMs) => {
            this.metrics.accepted(env, receivedAtMs);
            this.scheduler.add(env.id, env.mailbox, Date.now());
          },
          rejected: (reason) => this.metrics.rejected(reason),
          session: (listener) => this.metrics.session(listener),
          passthrough: l.passthrough ? (env, data) => sender.send(env, data) : undefined,
        }),
    );
  }

  async start(): Promise<void> {
    await this.spool.ensureDirs();
    if (this.cfg.delivery.mode === 'capture') await this.checkCaptureDir(this.cfg.delivery.captureDirectory);
    await this.lock.acquire();
    const report = await this.spool.open();
    if (report.removedTmp || report.removedOrphans || report.completedMoves) {
      this.log.info({ event: 'spool-recovered', ...report }, 'spool recovered after an unclean stop');
    }
    if (report.migrated) this.log.info({ event: 'spool-migrated', messages: report.migrated }, 'spool files of the two-file layout (.eml + .json) rewritten as .msg files');
    if (this.admin) {
      // Before SMTP: probes and scrapes work while the queue loads. Its own event name: "listening" means SMTP.
      const a = await this.admin.listen(this.cfg.admin.host, this.cfg.admin.port);
      this.log.info({ event: 'admin-listening', address: a.address, port: a.port }, `admin HTTP (/healthz /readyz /metrics) on ${a.address}:${a.port}`);
    }
    for (const [i, l] of this.listeners.entries()) {
      const addr = await l.listen();
      const name = this.cfg.listeners[i]!.name;
      this.log.info({ event: 'listening', listener: name, address: addr.address, port: addr.port }, `SMTP listener ${name} on ${addr.address}:${addr.port}`);
    }
    this.tokens?.warmUp();
    const loaded = await this.loadQueue();
    await this.control.start();
    this.log.info({ event: 'started', queued: loaded, delivery: this.cfg.delivery.mode }, 'relay started');
    this.log.flush(); // the start-up story goes out now, not at the next batch
  }

  /** Capture mode writes every message there: a folder it cannot write would take mail and never deliver it. */
  private async checkCaptureDir(dir: string): Promise<void> {
    const why = await mkdir(dir, { recursive: true }).then(
      () => writable(dir),
      (err: NodeJS.ErrnoException) => err.code ?? err.message,
    );
    if (why) throw new StartError(`the capture folder ${dir} is not writable (${why}): set delivery.captureDirectory or RELAY_CAPTURE_DIR to a writable folder (in a container, a volume)`);
  }

  /** Everything in queue/ is scheduled again; a restart retries at once, like `postqueue -f`. */
  private async loadQueue(): Promise<number> {
    const ids = await this.spool.ids('queue');
    const now = Date.now();
    for (let i = 0; i < ids.length; i += LOAD_BATCH) {
      const batch = ids.slice(i, i + LOAD_BATCH);
      const envs = await Promise.all(batch.map((id) => this.spool.readEnvelope('queue', id).catch((err: Error) => err)));
      envs.forEach((env, j) => {
        if (env instanceof Error) this.log.error({ qid: batch[j], event: 'spool-unreadable', err: env }, 'unreadable spool file; left in place for inspection');
        else {
          this.metrics.queued(env);
          this.scheduler.add(env.id, env.mailbox, now);
        }
      });
    }
    return ids.length;
  }

  /** Queue tools' requests (spool/control/), handled here so that the scheduler's view stays true. */
  private async handleControl(req: ControlRequest): Promise<ControlResponse> {
    const skipped: Record<string, string> = {};
    let count = 0;
    switch (req.op) {
      case 'retry':
        count = this.scheduler.retryNow((m) => matches(m, req));
        this.log.info({ event: 'queue-retry', count, request: req }, `queue tool: ${count} message(s) due now`);
        return { ok: true, count, message: `${count} message(s) due now` };
      case 'delete':
        for (const id of req.ids) {
          const state = req.dead ? 'dead' : 'queue';
          if (!req.dead && this.scheduler.has(id) && !this.scheduler.remove(id)) {
            skipped[id] = 'being delivered right now; try again in a moment';
            continue;
          }
          if (!(await this.spool.exists(state, id))) {
            skipped[id] = `not in ${state}`;
            continue;
          }
          await this.spool.remove(state, id);
          this.metrics.queue.remove(id);
          this.log.warn({ event: 'queue-delete', qid: id, state }, 'message deleted by a queue tool');
          count++;
        }
        return { ok: true, count, message: `${count} message(s) deleted`, skipped };
      case 'requeue':
        for (const id of req.all ? await this.spool.ids('dead') : (req.ids ?? [])) {
          if (!(await this.spool.exists('dead', id))) {
            skipped[id] = 'not in the dead-letter folder';
            continue;
          }
          const env = requeued(await this.spool.readEnvelope('dead', id));
          await this.spool.move('dead', 'queue', env);
          this.metrics.queued(env);
          this.scheduler.add(env.id, env.mailbox, Date.now());
          this.log.info({ event: 'queue-requeue', qid: id, mailbox: env.mailbox }, 'message requeued from the dead-letter folder');
          count++;
        }
        return { ok: true, count, message: `${count} message(s) back in the queue`, skipped };
    }
  }

  /** Graceful stop: no new sessions, transactions and attempts in progress finish within the grace period. */
  stop(graceMs = 30_000): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info({ event: 'stopping', graceMs }, 'stopping: no new connections');
      const draining = this.scheduler.stop();
      const closing = Promise.all(this.listeners.map((l) => l.close(graceMs, draining)));
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<'expired'>((resolve) => {
        timer = setTimeout(() => resolve('expired'), graceMs);
        timer.unref();
      });
      const res = await Promise.race([Promise.all([closing, draining]).then(() => 'done' as const), expired]);
      clearTimeout(timer);
      if (res === 'expired') this.log.warn({ event: 'grace-expired', inFlight: this.scheduler.inFlight() }, 'grace period over; unfinished work stays in the spool');
      await (res === 'expired' ? this.graph?.destroy() : this.graph?.close())?.catch(() => undefined);
      await this.rest?.close();
      this.control.stop();
      await this.spool.close();
      await this.lock.release();
      // Last: /healthz answers and /readyz says "shutting down" for the whole drain.
      await this.admin?.close();
      this.metrics.close();
      this.log.info({ event: 'stopped', queued: this.scheduler.size() }, 'relay stopped');
    })();
    return this.stopping;
  }
}


/**
 * Graph's per-mailbox limits kept by a fleet of replicas together, on Redis: at most `perMailboxConcurrency`
 * requests in flight per (account, mailbox) across the fleet (leases that expire, renewed while held), the
 * pacing of `messagesPerMinute` across the fleet, and a throttle's pause seen by every replica.
 *
 * Redis is never in the acceptance path and never holds up delivery for long: every command has a bounded
 * time (COMMAND_TIMEOUT_MS), and when Redis cannot be reached the replica falls back to a static share of
 * the limits (limit ÷ replicas, rounded down, at least 1) until Redis answers again.
 */

import type { Redis } from 'ioredis';
import { redactRedisUrl } from '../config/fleet.js';
import type { MailboxSlots, SlotAnswer } from '../scheduler/slots.js';
import { COMMAND_TIMEOUT_MS, fallbackShare, PROBE_MS, type FleetMode, type FleetSlotsOptions, type FleetStatus } from './fleet-options.js';
import { KeptLeases } from './kept.js';
import { PAUSE } from './scripts.js';
import { readLeases, redisClients, type FleetCommands, type LeaseView } from './redis.js';

export { fallbackShare, type FleetEvents, type FleetMode, type FleetStatus } from './fleet-options.js';

/** A full mailbox is asked again at least this often, in case a "freed" message was missed. */
const FULL_POLL_MS = 250;

interface Held {
  account: string;
  mailbox: string;
  leases: Set<string>;
}

export class FleetSlots implements MailboxSlots {
  private mode: FleetMode = 'fallback';
  /** Set when the replica enters fallback: it waits a lease time, so that requests started under shared limits end first. */
  private settleUntil = 0;
  /** After a return to shared limits: the share still caps this replica until every replica has had time to return. */
  private rejoinUntil = 0;
  private fallbacks = 0;
  private seq = 0;
  private readonly held = new Map<string, Held>();
  private readonly kept: KeptLeases;
  /** Local pacing while falling back: per key, when the next attempt may start. */
  private readonly nextStart = new Map<string, number>();
  private readonly freed: ((account?: string, mailbox?: string) => void)[] = [];
  private readonly redis: Redis & FleetCommands;
  private readonly sub: Redis;
  private readonly now: () => number;
  private readonly share: number;
  private readonly intervalMs: number;
  private readonly probeMs: number;
  private readonly replica: string;
  private readonly prefix: string;
  private renewTimer: NodeJS.Timeout | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private probing: Promise<void> | null = null;
  private closed = false;
  /** The fallback was announced (logged, counted); cleared on the return to shared limits. */
  private fellBack = false;

  constructor(private readonly o: FleetSlotsOptions) {
    const { cfg } = o;
    if (!cfg.redisUrl) throw new Error('FleetSlots needs fleet.redisUrl');
    this.now = o.now ?? Date.now;
    this.replica = cfg.replica;
    this.prefix = cfg.keyPrefix;
    this.share = fallbackShare(o.perMailboxConcurrency, cfg.replicas);
    this.intervalMs = o.messagesPerMinute > 0 ? 60_000 / o.messagesPerMinute : 0;
    this.probeMs = o.probeMs ?? PROBE_MS;
    this.kept = new KeptLeases((k, account, mailbox, id) => this.giveBackOne(k, account, mailbox, id), this.now);
    ({ redis: this.redis, sub: this.sub } = redisClients(cfg, o.commandTimeoutMs ?? COMMAND_TIMEOUT_MS, this.probeMs));
    this.redis.on('close', () => this.fallBack('connection closed'));
    this.redis.on('ready', () => void this.probe());
    this.sub.on('message', (channel: string, text: string) => {
      if (channel === this.pauseChannel) return this.heardPause(text);
      const slash = text.indexOf('/');
      if (slash > 0) this.wake(text.slice(0, slash), text.slice(slash + 1));
    });
  }

  /** Connects (bounded); unreachable, the replica starts in fallback and keeps trying. Never throws. */
  async start(): Promise<void> {
    // Subscribed here, again at every reconnection: ioredis's own re-subscription leaves its promise
    // unhandled, and a connection that closes while it runs would end the process (autoResubscribe off).
    const subscribe = (): void => void this.sub.subscribe(this.channel, this.pauseChannel).catch(() => undefined);
    this.sub.on('ready', subscribe);
    subscribe();
    const why = await this.redis.connect().then(
      () => null,
      (err: Error) => err.message,
    );
    await this.probe();
    if (this.mode !== 'shared') this.fallBack(why ?? `Redis is ${this.redis.status}`);
    this.renewTimer = setInterval(() => void this.renew(), Math.max(100, Math.floor(this.o.cfg.leaseMs / 3)));
    this.renewTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.kept.giveBackAll();
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.redis.disconnect();
    this.sub.disconnect();
  }

  onFreed(listener: (account?: string, mailbox?: string) => void): void {
    this.freed.push(listener);
  }

  async acquire(account: string, mailbox: string): Promise<SlotAnswer> {
    const k = keyOf(account, mailbox);
    const now = this.now();
    if (this.mode === 'shared') {
      if (this.rejoinUntil > now && this.heldCount(k) >= this.share) return { granted: false, retryAt: this.rejoinUntil };
      const kept = this.kept.take(k);
      if (kept) return this.grant(account, mailbox, kept);
      const id = `${this.replica}#${process.pid}#${++this.seq}`;
      try {
        const [ok, wait, why] = await this.redis.fleetAcquire(this.key('lease', k), this.key('pause', k), this.key('pace', k), this.o.perMailboxConcurrency, this.o.cfg.leaseMs, id, this.intervalMs);
        if (ok === 1) return this.grant(account, mailbox, id);
        return { granted: false, retryAt: this.now() + (why === 'full' ? Math.min(wait, FULL_POLL_MS) : wait) };
      } catch (err) {
        this.fallBack(err instanceof Error ? err.message : String(err));
      }
    }
    return this.acquireLocal(account, mailbox, k);
  }

  /** Fallback: this replica's share of the limits, and of the pacing, with no one to ask. */
  private acquireLocal(account: string, mailbox: string, k: string): SlotAnswer {
    const now = this.now();
    if (this.settleUntil > now) return { granted: false, retryAt: this.settleUntil };
    if (this.heldCount(k) >= this.share) return { granted: false, retryAt: now + this.probeMs };
    if (this.intervalMs > 0) {
      const next = this.nextStart.get(k) ?? 0;
      if (next > now) return { granted: false, retryAt: next };
      this.nextStart.set(k, now + this.intervalMs * this.o.cfg.replicas);
      if (this.nextStart.size > 10_000) for (const [x, t] of this.nextStart) if (t <= now) this.nextStart.delete(x);
    }
    return this.grant(account, mailbox, `${this.replica}#${process.pid}#${++this.seq}`);
  }

  private grant(account: string, mailbox: string, id: string): SlotAnswer {
    const k = keyOf(account, mailbox);
    let h = this.held.get(k);
    if (!h) this.held.set(k, (h = { account, mailbox, leases: new Set() }));
    h.leases.add(id);
    this.o.events?.held(account, mailbox, h.leases.size, this.replica);
    let released = false;
    return {
      granted: true,
      release: () => {
        if (released) return;
        released = true;
        this.release(k, h, id);
      },
    };
  }

  private release(k: string, h: Held, id: string): void {
    h.leases.delete(id);
    this.o.events?.held(h.account, h.mailbox, h.leases.size, this.replica);
    if (h.leases.size === 0) this.held.delete(k);
    // Pacing needs Redis's say on every start: no lease is kept then.
    if (this.mode === 'shared' && this.intervalMs === 0) return this.kept.keep(k, h.account, h.mailbox, id);
    this.giveBackOne(k, h.account, h.mailbox, id);
  }

  private giveBackOne(k: string, account: string, mailbox: string, id: string): void {
    if (this.mode === 'shared') {
      // Two commands, each with its own catch: a MULTI cut by a closed connection rejected its queued
      // commands' promises where nothing could catch them (an unhandled rejection when Redis went away).
      // The wake-up needs no atomicity: a replica that misses it polls (FULL_POLL_MS).
      const failed = (err: Error): void => this.fallBack(err.message);
      this.redis.zrem(this.key('lease', k), id).catch(failed);
      this.redis.publish(this.channel, k).catch(failed);
    }
    this.wake(account, mailbox);
  }

  /** Another replica paused a mailbox ("<ms> <key>"). */
  private heardPause(text: string): void {
    const space = text.indexOf(' ');
    const ms = Number(text.slice(0, space));
    if (space > 0 && ms > 0) this.kept.paused(text.slice(space + 1), ms);
  }

  paused(account: string, mailbox: string, until: number): void {
    const ms = Math.ceil(until - this.now());
    if (this.mode !== 'shared' || ms <= 0) return;
    const k = keyOf(account, mailbox);
    this.kept.paused(k, ms);
    const failed = (err: Error): void => this.fallBack(err.message);
    this.redis.eval(PAUSE, 1, this.key('pause', k), ms, this.replica).catch(failed);
    this.redis.publish(this.pauseChannel, `${ms} ${k}`).catch(failed);
  }

  status(): FleetStatus {
    return {
      replica: this.replica,
      mode: this.mode,
      redis: redactRedisUrl(this.o.cfg.redisUrl),
      replicas: this.o.cfg.replicas,
      fallbackShare: this.share,
      fallbacks: this.fallbacks,
      held: [...this.held.values()].map((h) => ({ account: h.account, mailbox: h.mailbox, slots: h.leases.size })),
    };
  }

  /** Every lease in Redis, by mailbox and replica: which replica holds which slots. Empty when Redis cannot be read. */
  fleetLeases(): Promise<LeaseView[]> {
    return this.mode === 'shared' ? readLeases(this.redis, this.key('lease', '')).catch(() => []) : Promise.resolve([]);
  }

  private heldCount(k: string): number {
    return this.held.get(k)?.leases.size ?? 0;
  }

  private wake(account: string, mailbox: string): void {
    for (const f of this.freed) f(account, mailbox);
  }

  private key(kind: 'lease' | 'pause' | 'pace', k: string): string {
    return `${this.prefix}${kind}:${k}`;
  }

  private get channel(): string {
    return `${this.prefix}freed`;
  }

  private get pauseChannel(): string {
    return `${this.prefix}paused`;
  }

  /** Redis cannot be reached: the static share from now on, after one lease time; tried again every probeMs. */
  private fallBack(reason: string): void {
    if (this.closed || this.fellBack) return;
    this.fellBack = true;
    if (this.mode === 'shared') this.fallbacks++;
    this.mode = 'fallback';
    this.rejoinUntil = 0;
    this.settleUntil = this.now() + this.o.cfg.leaseMs;
    this.o.log.warn(
      { event: 'fleet-fallback', replica: this.replica, reason, replicas: this.o.cfg.replicas, share: this.share, settleMs: this.o.cfg.leaseMs },
      `Redis cannot be reached (${reason}): this replica keeps ${this.share} of ${this.o.perMailboxConcurrency} slots per mailbox on its own, from ${this.o.cfg.leaseMs} ms on, until Redis answers again`,
    );
    this.o.events?.mode('fallback', this.replica);
    if (!this.probeTimer) {
      this.probeTimer = setInterval(() => void this.probe(), this.probeMs);
      this.probeTimer.unref();
    }
  }

  /** While falling back: Redis answers again? Then the leases held now go into Redis, and shared limits resume. */
  private probe(): Promise<void> {
    if (this.closed || this.mode === 'shared') return Promise.resolve();
    this.probing ??= this.tryRejoin().finally(() => (this.probing = null));
    return this.probing;
  }

  private async tryRejoin(): Promise<void> {
    try {
      if (this.redis.status === 'end') this.redis.connect().catch(() => undefined);
      if (this.redis.status !== 'ready') return;
      await this.redis.ping();
      await this.registerHeld();
      this.mode = 'shared';
      this.settleUntil = 0;
      // After a fallback, another replica may notice Redis up to a probe later: until then this one stays within its share.
      if (this.fellBack) this.rejoinUntil = this.now() + 2 * this.probeMs;
      if (this.probeTimer) clearInterval(this.probeTimer);
      this.probeTimer = null;
      this.fellBack = false;
      this.o.log.info({ event: 'fleet-shared', replica: this.replica, replicas: this.o.cfg.replicas, redis: redactRedisUrl(this.o.cfg.redisUrl) }, `limits shared with the fleet on Redis (replica ${this.replica})`);
      this.o.events?.mode('shared', this.replica);
      // Mailboxes told to wait out the fallback may start now.
      for (const f of this.freed) f();
    } catch {
      // still away; the next probe tries again
    }
  }

  private async registerHeld(): Promise<void> {
    for (const [k, h] of this.held) await this.redis.fleetRenew(this.key('lease', k), this.o.cfg.leaseMs, ...h.leases);
  }

  /** Held leases expire a lease time from now again; a request longer than a lease keeps its slot. */
  private async renew(): Promise<void> {
    if (this.mode !== 'shared' || this.held.size === 0) return;
    try {
      await this.registerHeld();
    } catch (err) {
      this.fallBack(err instanceof Error ? err.message : String(err));
    }
  }
}

function keyOf(account: string, mailbox: string): string {
  return `${account}/${mailbox}`;
}


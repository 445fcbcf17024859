/** Mutable emulator state shared by the Entra, Graph and control handlers: records, drafts, scripts, counters. */
import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Hash } from 'node:crypto';
import type {
  DownMode,
  Draft,
  EmulatorStats,
  FaultSettings,
  GraphOp,
  MailboxStats,
  PeerRecord,
  RequestLogEntry,
  ScriptStep,
  SentItem,
  SentRecord,
  TokenRequestRecord,
  TokenStep,
} from './types.js';

export interface UploadSession {
  id: string;
  authToken: string;
  upn: string;
  draftId: string;
  name: string;
  size: number;
  contentType?: string;
  isInline: boolean;
  contentId?: string;
  next: number;
  chunks: Buffer[];
  hash: Hash;
  expirationDateTime: string;
}

/** A tenant's app registration as the Entra and Graph handlers check it. */
export interface TenantConfig {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  clientCertPems: string[];
  roles: string[];
  mailboxes?: Set<string>;
}

export interface StateConfig {
  /** Tenants besides the primary one (tenantId, clientId …) on the same origin. */
  tenants: TenantConfig[];
  tenantId: string;
  clientId: string;
  clientSecret: string;
  clientCertPems: string[];
  acceptedAssertions: Set<string>;
  federatedTokens?: (assertion: string) => boolean;
  tokenLifetimeSec: number;
  /** The application roles tokens carry. */
  roles: string[];
  /** Roles any one of which lets a token read Sent Items. */
  lookupRoles: string[];
  /** Lower-cased mailbox → the other addresses it may send as (Send As granted in Exchange). */
  sendAs: Map<string, string[]>;
  /** Lower-cased known mailboxes; undefined means every user exists. */
  mailboxes?: Set<string>;
  maxBodyBytes: number;
  /** Origins besides the emulator's own that tokens may be asked for (`${origin}/.default`). */
  otherResources: Set<string>;
  faults: FaultSettings;
}

export const mailboxKey = (upn: string): string => upn.toLowerCase();

export class EmulatorState extends EventEmitter {
  /** https://127.0.0.1:PORT, known once the server listens. */
  origin = '';
  faults: FaultSettings;
  down: DownMode = false;
  /** Bumped by revokeTokens(); tokens carry the generation they were minted in. */
  tokenGeneration = 0;
  readonly tokenSecret = randomBytes(32);
  readonly sent: SentRecord[] = [];
  /** Message trace: requests answered, and the Exchange status to report per recipient (default delivered). */
  traceRequests = 0;
  readonly traceStatus = new Map<string, string>();
  readonly sentDrafts: SentRecord[] = [];
  readonly requests: RequestLogEntry[] = [];
  readonly tokenRequests: TokenRequestRecord[] = [];
  /** Every HTTP request, with its peer address (reset() clears it). */
  readonly peers: PeerRecord[] = [];
  readonly drafts = new Map<string, Map<string, Draft>>();
  readonly uploads = new Map<string, UploadSession>();
  /** Lower-cased mailbox → its Sent Items copies. */
  readonly sentItems = new Map<string, SentItem[]>();
  throttled429 = 0;
  /** Application roles in the tokens: the configured ones, unless a test sets others (reset() restores them). */
  roles: string[];
  /** Send As grants in force: the configured ones, plus any a test adds (reset() restores the configured ones). */
  sendAs: Map<string, string[]>;
  /** Aborted by close() so that pending latency/delay timers do not keep the process alive. */
  readonly closing = new AbortController();
  /** Replaced (and the old one aborted) by reset(): a request still waiting from before a reset is dropped, never recorded. */
  resetting = new AbortController();

  private readonly scripts = new Map<string, ScriptStep[]>();
  private tokenScript: TokenStep[] = [];
  private readonly inFlight = new Map<string, number>();
  private readonly mailboxStats = new Map<string, Omit<MailboxStats, 'inFlight'>>();

  constructor(readonly config: StateConfig) {
    super();
    this.faults = { ...config.faults };
    this.sendAs = new Map(config.sendAs);
    this.roles = [...config.roles];
  }

  /** The tenant with this id (case-insensitive): the primary one (with the roles in force now) or another. */
  tenant(id: string): TenantConfig | undefined {
    const c = this.config;
    if (id.toLowerCase() === c.tenantId.toLowerCase()) {
      return { tenantId: c.tenantId, clientId: c.clientId, clientSecret: c.clientSecret, clientCertPems: c.clientCertPems, roles: this.roles, ...(c.mailboxes ? { mailboxes: c.mailboxes } : {}) };
    }
    return c.tenants.find((t) => t.tenantId.toLowerCase() === id.toLowerCase());
  }

  addScript(upn: string, steps: ScriptStep[]): void {
    const key = upn === '*' ? '*' : mailboxKey(upn);
    const queue = this.scripts.get(key) ?? [];
    queue.push(...steps);
    this.scripts.set(key, queue);
  }

  /** The mailbox's own queue wins over the '*' queue; within a queue, the first step that fits `op`. */
  takeStep(upn: string, op: GraphOp): ScriptStep | undefined {
    for (const key of [mailboxKey(upn), '*']) {
      const queue = this.scripts.get(key);
      if (!queue) continue;
      const index = queue.findIndex((step) => step.op === undefined || step.op === op);
      if (index >= 0) return queue.splice(index, 1)[0];
    }
    return undefined;
  }

  addTokenScript(steps: TokenStep[]): void {
    this.tokenScript.push(...steps);
  }

  takeTokenStep(): TokenStep | undefined {
    return this.tokenScript.shift();
  }

  private stats(key: string): Omit<MailboxStats, 'inFlight'> {
    let stats = this.mailboxStats.get(key);
    if (!stats) {
      stats = { accepted: 0, maxInFlight: 0, throttled: 0 };
      this.mailboxStats.set(key, stats);
    }
    return stats;
  }

  inFlightFor(upn: string): number {
    return this.inFlight.get(mailboxKey(upn)) ?? 0;
  }

  /** Admits the request unless the mailbox is at its concurrency limit. */
  tryEnter(upn: string): boolean {
    const key = mailboxKey(upn);
    const current = this.inFlight.get(key) ?? 0;
    if (current >= this.faults.mailboxConcurrency) return false;
    this.inFlight.set(key, current + 1);
    const stats = this.stats(key);
    stats.maxInFlight = Math.max(stats.maxInFlight, current + 1);
    return true;
  }

  leave(upn: string): void {
    const key = mailboxKey(upn);
    const next = (this.inFlight.get(key) ?? 1) - 1;
    if (next <= 0) this.inFlight.delete(key);
    else this.inFlight.set(key, next);
  }

  countThrottled(upn: string | undefined): void {
    this.throttled429++;
    if (upn !== undefined) this.stats(mailboxKey(upn)).throttled++;
  }

  /** A message Graph accepted; with a copy kept, it shows in Sent Items after faults.sentItemsDelayMs. */
  recordSent(record: SentRecord, subject: string): void {
    this.stats(mailboxKey(record.upn)).accepted++;
    this.sent.push(record);
    if (record.via === 'draft') this.sentDrafts.push(record);
    if (record.savedToSentItems) {
      const key = mailboxKey(record.upn);
      const now = Date.now();
      const item: SentItem = {
        id: `AAMkSent${randomUUID().replace(/-/g, '')}`,
        internetMessageId: record.internetMessageId,
        sentDateTime: new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        subject,
        visibleAt: now + this.faults.sentItemsDelayMs,
      };
      this.sentItems.set(key, [...(this.sentItems.get(key) ?? []), item]);
    }
    this.emit('sent', record);
  }

  sentItemsOf(upn: string): SentItem[] {
    return this.sentItems.get(mailboxKey(upn)) ?? [];
  }

  mailboxDrafts(upn: string): Map<string, Draft> {
    const key = mailboxKey(upn);
    let drafts = this.drafts.get(key);
    if (!drafts) {
      drafts = new Map();
      this.drafts.set(key, drafts);
    }
    return drafts;
  }

  /** Upload sessions die with their draft, as they do in Exchange. */
  dropUploadsOf(draftId: string): void {
    for (const [id, session] of this.uploads) if (session.draftId === draftId) this.uploads.delete(id);
  }

  snapshot(): EmulatorStats {
    const perMailbox: Record<string, MailboxStats> = {};
    const keys = new Set([...this.mailboxStats.keys(), ...this.inFlight.keys()]);
    for (const key of keys) perMailbox[key] = { ...this.stats(key), inFlight: this.inFlight.get(key) ?? 0 };
    return { perMailbox, throttled429: this.throttled429, requests: this.requests.length, tokenRequests: this.tokenRequests.length };
  }

  /** Forgets records, drafts, scripts and counters; live in-flight counts survive (their requests are still running). */
  reset(): void {
    this.resetting.abort();
    this.resetting = new AbortController();
    this.sent.length = 0;
    this.sentDrafts.length = 0;
    this.requests.length = 0;
    this.tokenRequests.length = 0;
    this.peers.length = 0;
    this.drafts.clear();
    this.uploads.clear();
    this.sentItems.clear();
    this.scripts.clear();
    this.tokenScript = [];
    this.mailboxStats.clear();
    for (const [key, n] of this.inFlight) this.stats(key).maxInFlight = n;
    this.throttled429 = 0;
    this.faults = { ...this.config.faults };
    this.sendAs = new Map(this.config.sendAs);
    this.roles = [...this.config.roles];
    this.down = false;
  }
}


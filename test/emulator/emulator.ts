/** Microsoft Graph + Entra ID emulator over HTTPS for the relay's tests: startEmulator() and the Emulator handle. */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { handleControl } from './control.js';
import { handleEntra } from './entra.js';
import { handleGraph } from './graph.js';
import { handleMessageTrace } from './trace.js';
import { sendJson } from './http.js';
import { makeTestPki } from './pki.js';
import type { TestPki } from './pki.js';
import { DEFAULT_LOOKUP_ROLES } from './sent-items.js';
import { EmulatorState, mailboxKey } from './state.js';
import type {
  DownMode,
  Draft,
  EmulatorStats,
  FaultSettings,
  PeerRecord,
  TenantOptions,
  RequestLogEntry,
  ScriptStep,
  SentItem,
  SentRecord,
  TokenRequestRecord,
  TokenStep,
} from './types.js';

export type * from './types.js';
export type { TestPki } from './pki.js';

export const DEFAULT_TENANT_ID = '6f1d3c2b-8a4e-4b7f-9c5d-2e0a1b3c4d5e';
export const DEFAULT_CLIENT_ID = '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f';
export const DEFAULT_CLIENT_SECRET = 'emu~Q8s.test-secret_not-a-real-one';

export interface EmulatorOptions {
  port?: number;
  /** Made in a fresh temp dir (removed on close) when absent. */
  pki?: TestPki;
  tenantId?: string;
  clientId?: string;
  clientSecret?: string;
  /** Registered certificate(s) of the app; defaults to pki.clientCertPem. Several model a rotation. */
  clientCertPem?: string | string[];
  /** Federated (workload identity) tokens accepted verbatim as client_assertion. */
  acceptedAssertions?: Iterable<string>;
  federatedTokens?: (assertion: string) => boolean;
  tokenLifetimeSec?: number;
  /** Application roles in issued tokens; default Mail.Send and Mail.ReadWrite. */
  roles?: string[];
  /** Roles any one of which lets a token list Sent Items (403 ErrorAccessDenied without); default Mail.ReadBasic.All and the wider read roles. */
  lookupRoles?: string[];
  /** How long after Graph accepted a message its copy appears in Sent Items; default 0. */
  sentItemsDelayMs?: number;
  /** Mailbox → other addresses it may send as (Send As granted); From/Sender anything else gets 403 ErrorSendAsDenied. */
  sendAs?: Record<string, string[]>;
  /** When set, any other user gets 404 ErrorInvalidUser. */
  mailboxes?: string[];
  /** More tenants on the same origin (a service provider's customers): each with its app, roles and mailboxes. */
  tenants?: TenantOptions[];
  mailboxConcurrency?: number;
  latencyMs?: number;
  jitterMs?: number;
  randomFaultRate?: number;
  maxBodyBytes?: number;
  /**
   * Other APIs (origins) the app may ask tokens for, as a tenant's Entra ID issues tokens for any resource
   * the app is granted; the Graph sink of bench/vs-postfix.ts. The emulator's own origin is always one.
   */
  otherResources?: string[];
}

export class Emulator extends EventEmitter {
  readonly graphUrl: string;
  readonly authorityHost: string;
  /** authorityHost + '/' + tenantId: what msal-node takes as `auth.authority`. */
  readonly authority: string;
  readonly controlUrl: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly caCertPath: string;
  readonly port: number;

  constructor(
    private readonly state: EmulatorState,
    private readonly server: Server,
    readonly pki: TestPki,
    private readonly ownedPkiDir: string | undefined,
  ) {
    super();
    const port = (server.address() as AddressInfo).port;
    this.port = port;
    this.graphUrl = `https://127.0.0.1:${port}`;
    this.authorityHost = this.graphUrl;
    this.authority = `${this.authorityHost}/${state.config.tenantId}`;
    this.controlUrl = `${this.graphUrl}/_emulator`;
    this.tenantId = state.config.tenantId;
    this.clientId = state.config.clientId;
    this.clientSecret = state.config.clientSecret;
    this.caCertPath = pki.caCertPath;
    state.on('sent', (record: SentRecord) => this.emit('sent', record));
    // 'admitted': a Graph request passed the concurrency gate (now in flight); 'request': it was answered or reset.
    state.on('admitted', (entry: RequestLogEntry) => this.emit('admitted', entry));
    state.on('request', (entry: RequestLogEntry) => this.emit('request', entry));
  }

  /** Accepted messages in arrival order: sendMail calls and sent drafts (via: 'draft'). */
  get sent(): SentRecord[] {
    return this.state.sent;
  }

  get sentDrafts(): SentRecord[] {
    return this.state.sentDrafts;
  }

  /** Every Graph and upload-URL request (not token or control requests). */
  get requests(): RequestLogEntry[] {
    return this.state.requests;
  }

  /** Every HTTP request of any kind, with the peer's address (who connected: the relay, or a proxy). */
  get peers(): PeerRecord[] {
    return this.state.peers;
  }

  /** Every token request, failed ones included (ok: false). */
  get tokenRequests(): TokenRequestRecord[] {
    return this.state.tokenRequests;
  }

  /** Mutable: add federated tokens while running. */
  get acceptedAssertions(): Set<string> {
    return this.state.config.acceptedAssertions;
  }

  get faults(): FaultSettings {
    return { ...this.state.faults };
  }

  /** The copies in a mailbox's Sent Items, visible or not yet. */
  sentItems(upn: string): SentItem[] {
    return [...this.state.sentItemsOf(upn)];
  }

  drafts(upn: string): Draft[] {
    return [...(this.state.drafts.get(mailboxKey(upn))?.values() ?? [])];
  }

  /** Queues scripted answers for the next Graph requests to `upn` (or any mailbox with '*'). */
  script(upn: string, steps: ScriptStep[]): void {
    this.state.addScript(upn, steps);
  }

  /** Queues scripted answers for the next token requests. */
  scriptToken(steps: TokenStep[]): void {
    this.state.addTokenScript(steps);
  }

  setFaults(faults: Partial<FaultSettings>): void {
    for (const [key, value] of Object.entries(faults) as [keyof FaultSettings, number | undefined][]) {
      if (value !== undefined) this.state.faults[key] = value;
    }
  }

  /** '503': every Graph request gets 503; 'reset': connections are dropped; false: back to normal. Tokens still work. */
  setDown(mode: DownMode): void {
    this.state.down = mode;
  }

  unavailable(down: boolean): void {
    this.setDown(down ? '503' : false);
  }

  private refusing = false;

  /**
   * Graph and Entra ID out of reach (on): nothing listens on the port, so every connection is refused
   * before any request goes out (ECONNREFUSED: a token that cannot be had, a Graph request that never
   * left), and open connections are dropped. Off: listening again on the same port.
   */
  async setUnreachable(on: boolean): Promise<void> {
    if (on === this.refusing) return;
    this.refusing = on;
    if (on) {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeAllConnections();
      await closed;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  /** Invalidates every token issued so far: the next Graph call with one gets 401 InvalidAuthenticationToken. */
  revokeTokens(): void {
    this.state.tokenGeneration++;
  }

  stats(): EmulatorStats {
    return this.state.snapshot();
  }

  /** Resolves with `sent` once it holds at least n records. */
  waitForSent(n: number, timeoutMs = 20_000): Promise<SentRecord[]> {
    if (this.state.sent.length >= n) return Promise.resolve(this.state.sent);
    return new Promise((resolve, reject) => {
      const onSent = (): void => {
        if (this.state.sent.length < n) return;
        cleanup();
        resolve(this.state.sent);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`waitForSent(${n}): only ${this.state.sent.length} message(s) after ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.state.off('sent', onSent);
      };
      this.state.on('sent', onSent);
    });
  }

  /** Clears records, drafts, scripts and counters, and restores the start-up fault settings. */
  reset(): void {
    this.state.reset();
    if (this.refusing) void this.setUnreachable(false);
  }

  /** Message trace: what Exchange reports for this recipient (delivered unless set: failed, pending, quarantined…). */
  setTraceStatus(recipient: string, status: string): void {
    this.state.traceStatus.set(recipient.toLowerCase(), status);
  }

  /** Message trace requests answered so far (the relay caches and rate-limits them). */
  get traceRequests(): number {
    return this.state.traceRequests;
  }

  /** The application roles of tokens issued from now until the next reset(). */
  setRoles(roles: string[]): void {
    this.state.roles = [...roles];
  }

  /** Grants `mailbox` Send As on `addresses` until the next reset(). */
  grantSendAs(mailbox: string, ...addresses: string[]): void {
    const key = mailboxKey(mailbox);
    this.state.sendAs.set(key, [...(this.state.sendAs.get(key) ?? []), ...addresses]);
  }

  async close(): Promise<void> {
    this.state.closing.abort();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    if (this.ownedPkiDir) rmSync(this.ownedPkiDir, { recursive: true, force: true });
  }
}

export async function startEmulator(opts: EmulatorOptions = {}): Promise<Emulator> {
  const ownedPkiDir = opts.pki ? undefined : mkdtempSync(join(tmpdir(), 'graph-emulator-'));
  const pki = opts.pki ?? makeTestPki(ownedPkiDir as string);
  const certs = opts.clientCertPem ?? pki.clientCertPem;
  const state = new EmulatorState({
    tenantId: opts.tenantId ?? DEFAULT_TENANT_ID,
    clientId: opts.clientId ?? DEFAULT_CLIENT_ID,
    clientSecret: opts.clientSecret ?? DEFAULT_CLIENT_SECRET,
    clientCertPems: Array.isArray(certs) ? certs : [certs],
    acceptedAssertions: new Set(opts.acceptedAssertions ?? []),
    tokenLifetimeSec: opts.tokenLifetimeSec ?? 3600,
    maxBodyBytes: opts.maxBodyBytes ?? 4 * 1024 * 1024,
    otherResources: new Set(opts.otherResources ?? []),
    roles: opts.roles ?? ['Mail.Send', 'Mail.ReadWrite'],
    lookupRoles: opts.lookupRoles ?? DEFAULT_LOOKUP_ROLES,
    tenants: (opts.tenants ?? []).map((t) => {
      const pems = t.clientCertPem ?? [];
      return {
        tenantId: t.tenantId,
        clientId: t.clientId,
        clientSecret: t.clientSecret ?? DEFAULT_CLIENT_SECRET,
        clientCertPems: Array.isArray(pems) ? pems : [pems],
        roles: t.roles ?? ['Mail.Send', 'Mail.ReadWrite'],
        ...(t.mailboxes ? { mailboxes: new Set(t.mailboxes.map(mailboxKey)) } : {}),
      };
    }),
    sendAs: new Map(Object.entries(opts.sendAs ?? {}).map(([k, v]) => [mailboxKey(k), v])),
    faults: {
      latencyMs: opts.latencyMs ?? 0,
      jitterMs: opts.jitterMs ?? 0,
      randomFaultRate: opts.randomFaultRate ?? 0,
      mailboxConcurrency: opts.mailboxConcurrency ?? 4,
      sentItemsDelayMs: opts.sentItemsDelayMs ?? 0,
      acceptThenResetRate: 0,
      acceptThenHangRate: 0,
    },
    ...(opts.federatedTokens ? { federatedTokens: opts.federatedTokens } : {}),
    ...(opts.mailboxes ? { mailboxes: new Set(opts.mailboxes.map(mailboxKey)) } : {}),
  });

  // Late-bound: the control API needs the Emulator, which needs the listening server.
  let emulator: Emulator | undefined;
  const onRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', state.origin || 'https://127.0.0.1');
    state.peers.push({ method: req.method ?? '', path: url.pathname, remoteAddress: req.socket.remoteAddress ?? '' });
    if (emulator && (await handleControl(state, emulator, req, res, url))) return;
    if (await handleMessageTrace(state, req, res, url)) return;
    if (await handleGraph(state, req, res, url)) return;
    if (await handleEntra(state, req, res, url)) return;
    sendJson(res, 404, { error: { code: 'NotFound', message: `No emulated endpoint at ${req.method ?? ''} ${url.pathname}` } });
  };
  // Long keep-alive, like Graph's front door: a short one makes clients race idle-socket closes.
  const server = createServer({ key: pki.serverKeyPem, cert: pki.serverCertPem, keepAliveTimeout: 30_000 }, (req, res) => {
    onRequest(req, res).catch((err: unknown) => {
      process.stderr.write(`graph emulator: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      if (!res.headersSent) sendJson(res, 500, { error: { code: 'InternalServerError', message: String(err) } });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  state.origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  emulator = new Emulator(state, server, pki, ownedPkiDir);
  return emulator;
}

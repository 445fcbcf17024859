/**
 * The Graph accounts of a relay in graph mode, each with its own token provider (and so its own token
 * cache), its own Graph adapter and what its token's roles allow; all over one Outbound (one pool per
 * origin, the proxy). What each account may carry is said at start and enforced at MAIL FROM and DATA.
 */

import { MsalTokenProvider, type TokenProvider } from '../auth/token-provider.js';
import { accountGraphConfig, graphAccounts } from '../config/accounts.js';
import { maxRawForRequest, type GraphAccount, type RelayConfig } from '../config/config.js';
import { GraphAdapter } from '../graph/adapter.js';
import { GraphHttp } from '../graph/http.js';
import { LOOKUP_ROLES } from '../graph/sent-items.js';
import { Outbound } from '../net/outbound.js';
import type { Logger } from '../observability/logger.js';
import type { RelayMetrics } from '../observability/metrics.js';
import { AccountSelector } from '../policy/accounts.js';
import { permissionSummary } from './permissions.js';

interface Account {
  cfg: GraphAccount;
  tokens: MsalTokenProvider;
  graph: GraphAdapter;
  /** Null until its first token (nothing is refused for want of a permission until then); then its token's roles. */
  roles: string[] | null | undefined;
  /** Whether the large-message route may be used (Mail.ReadWrite, or roles unknown, or not checked). */
  drafts: boolean;
  /** Whether "no Sent Items look-up" was said for this account. */
  lookupWarned: boolean;
}

export class GraphAccounts {
  readonly net: Outbound;
  private readonly byName = new Map<string, Account>();
  /** One Graph request carries at most this much (prefix and message, before base64). */
  private readonly oneRequest: number;

  /** `given`: a token provider of the caller's for the default account (tests). */
  constructor(
    private readonly cfg: RelayConfig,
    private readonly log: Logger,
    metrics: RelayMetrics,
    tmpDir: string,
    given?: MsalTokenProvider | null,
  ) {
    const g = cfg.graph;
    this.oneRequest = maxRawForRequest(g.maxRequestBytes);
    this.net = Outbound.forGraph(g, cfg.delivery.globalConcurrency);
    if (g.proxy) log.info({ event: 'proxy', proxy: g.proxy.url, source: g.proxy.source, noProxy: g.proxy.noProxy, auth: g.proxy.username !== null }, `Entra ID and Graph are reached through the proxy ${g.proxy.url} (${g.proxy.source})`);
    for (const a of graphAccounts(cfg)) {
      const full = accountGraphConfig(g, a);
      const hooks = {
        onResult: (ok: boolean) => metrics.tokenResult(ok, a.name),
        onRoles: (roles: string[] | null) => this.rolesKnown(a.name, roles),
        onExpiry: (at: number | null) => metrics.credentialExpiryAt(a.name, at),
      };
      const tokens = (a.name === cfg.defaultAccount ? given : null) ?? new MsalTokenProvider(full, log, hooks, process.env, this.net);
      const http = new GraphHttp(full.graphUrl, this.net);
      const large = { maxRequestBytes: g.maxRequestBytes, largeMessages: cfg.delivery.largeMessages, uploadBudgetBytes: g.uploadBudgetBytes, uploadBudgetWindowMs: g.uploadBudgetWindowMs, tmpDir };
      const graph = new GraphAdapter(http, tokens, { ...large, account: a.name, draftsAllowed: () => this.draftsAllowed(a.name) }, log);
      this.byName.set(a.name, { cfg: a, tokens, graph, roles: undefined, drafts: true, lookupWarned: false });
    }
  }

  adapter(name: string): GraphAdapter | null {
    return this.byName.get(name)?.graph ?? null;
  }

  /** Where the status page asks Graph's message trace for a message of this account (its tokens, through the Outbound). */
  traceTarget(name: string): { graphUrl: string; tokens: TokenProvider; dispatcher: Outbound['dispatcher'] } | null {
    const a = this.byName.get(name);
    return a ? { graphUrl: accountGraphConfig(this.cfg.graph, a.cfg).graphUrl, tokens: a.tokens, dispatcher: this.net.dispatcher } : null;
  }

  /** Each account's token provider, for readiness. */
  tokenProviders(): { name: string; tokens: TokenProvider }[] {
    return [...this.byName.entries()].map(([name, a]) => ({ name, tokens: a.tokens }));
  }

  /** At start: every account asks for its first token (and so learns its roles), and watches its certificate. */
  start(): void {
    for (const a of this.byName.values()) {
      a.tokens.warmUp();
      a.tokens.watch();
    }
  }

  /** SIGHUP: certificate credentials are read again now. */
  reloadCredentials(): void {
    for (const a of this.byName.values()) a.tokens.reloadCredential();
  }

  async close(abandon: boolean): Promise<void> {
    for (const a of this.byName.values()) a.tokens.unwatch();
    await (abandon ? this.net.destroy() : this.net.close());
  }

  /** The large-message route (a draft) needs Mail.ReadWrite; unknown roles (none in the token) refuse nothing. */
  private draftsAllowed(name: string): boolean {
    return this.byName.get(name)?.drafts ?? true;
  }

  /** When an account's permissions make its largest message smaller than limits.maxMessageSize: how big, and why. */
  sizeLimit(name: string): { bytes: number; why: string } | null {
    const a = this.byName.get(name);
    if (!a || !this.cfg.delivery.largeMessages || this.draftsAllowed(name) || this.cfg.limits.maxMessageSize <= this.oneRequest) return null;
    return { bytes: this.oneRequest, why: `account "${name}" has no Mail.ReadWrite permission (its token's roles: ${(a.roles ?? []).join(', ')}), so it sends at most ${this.oneRequest} bytes, one Graph request; the large-message route needs Mail.ReadWrite` };
  }

  /** The first token, or one whose roles changed: what the account can do now, said once. */
  private rolesKnown(name: string, roles: string[] | null): void {
    const a = this.byName.get(name)!;
    const p = permissionSummary(name, roles, { largeMessages: this.cfg.delivery.largeMessages, oneRequest: this.oneRequest, checkPermissions: a.cfg.checkPermissions });
    a.roles = roles;
    a.drafts = p.drafts;
    this.log[p.level]({ event: 'permissions', account: name, roles: roles ?? [], known: p.caps.known, largeMessages: p.drafts && this.cfg.delivery.largeMessages }, p.text);
    if (roles !== null && !roles.some((r) => (LOOKUP_ROLES as readonly string[]).includes(r)) && !a.lookupWarned) {
      a.lookupWarned = true; // once per account: a renewed token with the same roles says nothing new
      this.log.warn({ event: 'sent-items-lookup-unavailable', account: name, need: LOOKUP_ROLES[0] }, `account ${name}: the token has none of ${LOOKUP_ROLES.join(', ')}: an attempt that ends without an answer cannot be checked in Sent Items and is sent again (at-least-once); grant ${LOOKUP_ROLES[0]}`);
    }
  }
}

/** The account a mailbox sends through when no user, network, mapping or listener names one: its domain's, else the default. */
export function accountOfMailbox(cfg: RelayConfig, mailbox: string): string | null {
  const chosen = new AccountSelector(graphAccounts(cfg), cfg.defaultAccount).choose({ rule: null, mapping: undefined, listener: { account: null }, mailbox });
  return chosen.ok ? chosen.account : null;
}

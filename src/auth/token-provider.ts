/** App-only Graph tokens from Entra ID with msal-node (secret, certificate, workload identity or managed identity). */

import { ConfidentialClientApplication, LogLevel, type Configuration, type NodeSystemOptions } from '@azure/msal-node';
import type { Dispatcher } from 'undici';
import { selectCredential, type CredentialKind } from '../config/credentials.js';
import type { GraphConfig } from '../config/config.js';
import { isWellKnownAuthorityHost } from '../config/clouds.js';
import { ConfigError, TokenError } from '../errors.js';
import { Outbound } from '../net/outbound.js';
import type { Logger } from '../observability/logger.js';
import { CredentialFileWatcher, readCertificateCredential } from './certificate.js';
import { aadstsCode, entraHint, entraSentence } from './entra-errors.js';
import { managedIdentityAcquirer, type AcquireToken } from './managed-identity.js';
import { MsalNetwork, type TokenNetworkFailure } from './msal-network.js';
import { tokenRoles } from './token-roles.js';
import { federatedAssertion } from './workload-identity.js';

export interface TokenProvider {
  /** A token from msal's cache until near expiry; `fresh` bypasses the cache (after a 401). */
  getToken(fresh?: boolean): Promise<string>;
  /** When a token was last obtained, for readiness. */
  readonly lastSuccessAt: number | null;
}

/** How a provider reaches Entra ID (`dispatcher`, through the proxy where one is set) and a managed identity endpoint (`direct`). */
export interface TokenNetwork {
  dispatcher: Dispatcher;
  direct: Dispatcher;
  via?(url: string): string;
}

/** What the relay hears from a token provider: for metrics, the permissions check and the credential expiry. */
export interface TokenHooks {
  /** Every token that came from Entra ID (not a cache) and every failure. */
  onResult?(ok: boolean): void;
  /** The roles of the first token, and of any later one whose roles differ (null: the token has none). */
  onRoles?(roles: string[] | null): void;
  /** The credential's expiry (a certificate's notAfter, graph.clientSecretExpires), at start and after a reload; null: unknown. */
  onExpiry?(expiresAt: number | null): void;
}


/** Renew this long before expiry, as msal-node does. */
const REFRESH_MARGIN_MS = 5 * 60_000;
/** A token with less validity left than this is not handed out: callers wait for the new one. */
const MIN_VALIDITY_MS = 60_000;

export class MsalTokenProvider implements TokenProvider {
  private acquire!: AcquireToken;
  private readonly network: MsalNetwork;
  private readonly authorityHost: string;
  private readonly system: NodeSystemOptions;
  private readonly watcher: CredentialFileWatcher | null = null;
  readonly credential: CredentialKind;
  /** The account's name, on every log line. */
  readonly account: string;
  lastSuccessAt: number | null = null;
  /** The roles of the last token from Entra ID (null: none in it; undefined: no token yet). */
  roles: string[] | null | undefined = undefined;

  constructor(
    private readonly cfg: GraphConfig,
    private readonly log: Logger,
    private readonly hooks: TokenHooks = {},
    env: NodeJS.ProcessEnv = process.env,
    /** How to reach Entra ID and managed identity endpoints; by default made from graph.* (timeouts, proxy). */
    net: TokenNetwork = Outbound.forGraph(cfg, 4, cfg.headersTimeoutMs),
  ) {
    const sel = selectCredential(cfg, env);
    if (!sel.ok) throw new ConfigError(sel.key, sel.problem);
    this.credential = sel.kind;
    this.account = cfg.name;
    // A managed identity endpoint is on the host (IMDS, App Service, Arc): never through the proxy.
    const mi = sel.kind === 'managed-identity';
    this.network = new MsalNetwork({ headersTimeoutMs: cfg.headersTimeoutMs, dispatcher: mi ? net.direct : net.dispatcher, ...(mi || !net.via ? {} : { via: (u: string) => net.via!(u) }) });
    this.authorityHost = new URL(cfg.authorityHost).host;
    this.system = {
      networkClient: this.network,
      loggerOptions: {
        piiLoggingEnabled: false,
        logLevel: LogLevel.Warning,
        loggerCallback: (level, message) => {
          if (level <= LogLevel.Warning) log.warn({ event: 'msal', component: 'msal', account: this.account }, message);
        },
      },
    };
    if (mi) {
      this.acquire = managedIdentityAcquirer(cfg.graphUrl, cfg.clientId, this.system);
      hooks.onExpiry?.(null);
      return;
    }
    this.build();
    if (sel.kind === 'certificate' && cfg.clientCertificatePath) this.watcher = new CredentialFileWatcher(cfg.clientCertificatePath, cfg.reloadCheckIntervalMs, () => this.reloadCertificate());
  }

  /** A new msal application (and so an empty cache) from the credential as it is now; the certificate file is read here. */
  private build(): void {
    const cfg = this.cfg;
    if (!cfg.tenantId || !cfg.clientId) throw new ConfigError('graph.tenantId', 'tenant and client id are required');
    const auth: Configuration['auth'] = {
      clientId: cfg.clientId,
      authority: `${cfg.authorityHost}/${cfg.tenantId}`,
      // msal-node knows the public clouds' hosts; any other host (a sovereign proxy, the test emulator)
      // must be trusted explicitly, or msal asks the global cloud's instance discovery about it.
      knownAuthorities: isWellKnownAuthorityHost(cfg.authorityHost) ? [] : [new URL(cfg.authorityHost).host],
    };
    let expiresAt = cfg.clientSecretExpiresAt;
    if (this.credential === 'certificate' && cfg.clientCertificatePath) {
      const c = readCertificateCredential(cfg.clientCertificatePath);
      auth.clientCertificate = { thumbprintSha256: c.thumbprintSha256, privateKey: c.privateKey, x5c: c.x5c };
      expiresAt = c.notAfter;
      this.thumbprint = c.thumbprintSha256;
    } else if (this.credential === 'workload-identity' && cfg.federatedTokenFile) {
      auth.clientAssertion = federatedAssertion(cfg.federatedTokenFile);
      expiresAt = null;
    } else if (cfg.clientSecret) {
      auth.clientSecret = cfg.clientSecret;
    }
    const app = new ConfidentialClientApplication({ auth, system: this.system });
    const scope = `${cfg.graphUrl}/.default`;
    this.acquire = (fresh) => app.acquireTokenByClientCredential({ scopes: [scope], skipCache: fresh });
    this.hooks.onExpiry?.(expiresAt);
  }

  private thumbprint: string | null = null;

  /** Starts watching a certificate credential's file (the relay does, at start). */
  watch(): void {
    this.watcher?.start();
  }

  /** At stop, or SIGHUP's reload: now rather than at the next check. */
  unwatch(): void {
    this.watcher?.stop();
  }

  reloadCredential(): void {
    this.watcher?.reload();
  }

  /**
   * The certificate file changed: a new pair is used once it parses, the cached token is dropped and a new
   * one asked for at once, so a certificate Entra ID does not know shows now, not at the next renewal. A
   * file that does not parse (half written) leaves the previous certificate in use.
   */
  private reloadCertificate(): void {
    const before = this.thumbprint;
    try {
      this.build();
    } catch (err) {
      this.log.warn({ event: 'credential-reload-failed', account: this.account, err: (err as Error).message }, `the certificate of account ${this.account} was not reloaded; the previous one stays in use`);
      return;
    }
    if (this.thumbprint === before) return;
    this.log.info({ event: 'credential-reloaded', account: this.account, credential: this.credential, thumbprint: this.thumbprint }, `the certificate of account ${this.account} was reloaded`);
    this.cached = null;
    this.getToken(true).catch(() => undefined);
  }

  /**
   * The token is kept here while more than REFRESH_MARGIN_MS of it remains, and callers that arrive while
   * one is being fetched share that request: msal's own cache lookup costs ~7% of a delivery's CPU, and
   * without sharing, a burst at start sends one token request per message in flight.
   */
  async getToken(fresh = false): Promise<string> {
    const left = this.cached ? this.cached.expiresAt - Date.now() : 0;
    if (!fresh && left > REFRESH_MARGIN_MS) return this.cached!.token;
    this.pending ??= this.fetchToken(fresh).finally(() => (this.pending = null));
    if (!fresh && left > MIN_VALIDITY_MS) {
      // Renewed in the background (a failure is logged by fetchToken): deliveries do not stall every hour.
      this.pending.catch(() => undefined);
      return this.cached!.token;
    }
    return this.pending;
  }

  /** At start: the first message need not wait for Entra ID, and a credential problem shows in the log at once. */
  warmUp(): void {
    this.getToken().catch(() => undefined);
  }

  private cached: { token: string; expiresAt: number } | null = null;
  private pending: Promise<string> | null = null;

  private async fetchToken(fresh: boolean): Promise<string> {
    this.network.lastFailure = null;
    try {
      const res = await this.acquire(fresh);
      if (!res?.accessToken) throw new TokenError('Entra ID returned no access token', 'no_token');
      if (fresh || res.fromCache === false) {
        this.log.info({ event: 'token', account: this.account, credential: this.credential, fresh, expiresOn: res.expiresOn?.toISOString() }, 'Graph token acquired');
        this.hooks.onResult?.(true);
        this.noteRoles(tokenRoles(res.accessToken));
      }
      this.lastSuccessAt = Date.now();
      this.cached = { token: res.accessToken, expiresAt: res.expiresOn?.getTime() ?? 0 };
      return res.accessToken;
    } catch (err) {
      this.hooks.onResult?.(false);
      if (err instanceof TokenError) throw err;
      const e = err as { errorCode?: string; errorMessage?: string; message?: string };
      const raw = (e.errorMessage || e.message || String(err)).split('\n')[0]!;
      // msal's own words ("endpoints_resolution_error", "fetch failed") name neither host nor cause: ours do.
      const failure = this.network.lastFailure as TokenNetworkFailure | null; // set by requests since the reset above
      const hint = entraHint(raw);
      const msg = failure
        ? `${failure.step}: ${failure.cause}`
        : `Entra ID (${this.authorityHost}) refused the token request: ${e.errorCode ? `${e.errorCode}: ` : ''}${entraSentence(raw)}${hint ? ` — ${hint}` : ''}`;
      const aadsts = aadstsCode(raw);
      this.log.error({ event: 'token-failed', account: this.account, credential: this.credential, errorCode: e.errorCode, ...(aadsts ? { aadsts } : {}), ...(failure ? { step: failure.step } : {}) }, `could not get a Graph token: ${msg}`);
      throw new TokenError(msg, aadsts ?? e.errorCode ?? 'unknown', hint);
    }
  }

  private noteRoles(roles: string[] | null): void {
    const same = this.roles !== undefined && JSON.stringify(this.roles) === JSON.stringify(roles);
    this.roles = roles;
    if (!same) this.hooks.onRoles?.(roles);
  }
}

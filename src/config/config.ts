/** The relay's configuration as every part reads it: the settings' types and the limits derived from them (load.ts builds it). */

import type { CloudName } from './clouds.js';
import type { CredentialInputs } from './credentials.js';
import type { FleetConfig } from './fleet.js';
import type { FrontDoorLimits, ListenerSecurity, PolicyConfig, UserConfig } from './front-door.js';
import type { AdminConfig, HistoryConfig } from './visibility.js';
import type { UnknownOutcomeConfig } from './unknown-outcome.js';

/** A listener; its TLS, AUTH and PROXY settings are described in src/config/front-door.ts. */
export interface ListenerConfig extends ListenerSecurity {
  name: string;
  host: string;
  port: number;
  /** CIDR ranges whose clients may send through this listener. */
  allowedNetworks: string[];
  /** No spool: Graph is called before the reply to DATA, and its answer becomes the SMTP answer. */
  passthrough: boolean;
  /** Pause before the 220 greeting; a client that talks during it gets 421 (early-talker detection). 0 = greet at once. */
  greetingDelayMs: number;
  /** The Graph account of mail received here, unless the AUTH user's or the sender mapping's account says otherwise. */
  account: string | null;
}

export interface RetryConfig {
  /** Delays between attempts; the last one repeats until maxQueueLifetime. */
  scheduleMs: number[];
  maxQueueLifetimeMs: number;
  /** Backoff used for 429/503 without Retry-After: base doubles per consecutive throttle, capped. */
  throttleBackoffBaseMs: number;
  throttleBackoffMaxMs: number;
  /** Long pause for mailbox-level blocks (quota exceeded, submission blocked). */
  mailboxBlockedDelayMs: number;
  /** Graph or Entra ID unreachable: the longest pause between two probes (the breaker's pauses double up to it). */
  outageProbeIntervalMs: number;
}

export interface DeliveryConfig {
  mode: 'graph' | 'capture';
  captureDirectory: string;
  /**
   * A To/Cc/Bcc address that is not an envelope recipient: `deliver` (Graph delivers to it, as to every
   * header recipient), `reject` (550 at DATA) or `envelope` (removed from the headers, so Graph delivers to
   * exactly the envelope recipients). Recipient policy applies to every address Graph delivers to, whichever.
   */
  headerOnlyRecipients: HeaderOnlyMode;
  perMailboxConcurrency: number;
  /** The most queued messages held in memory (the active set); the rest waits on disk until there is room. */
  activeLimit: number;
  globalConcurrency: number;
  /** Optional pacing per mailbox, messages per minute; 0 = off. */
  messagesPerMinute: number;
  retry: RetryConfig;
  /** Messages too big for one sendMail request go through a draft and attachment uploads (needs Mail.ReadWrite). */
  largeMessages: boolean;
  /** keep: Graph saves a copy in Sent Items (MIME sendMail); discard: JSON sendMail with saveToSentItems false. */
  sentItems: SentItemsMode;
  /** An attempt that ended without knowing whether Graph sent the message is looked up in Sent Items first. */
  unknownOutcome: UnknownOutcomeConfig;
}

export type SentItemsMode = 'keep' | 'discard';
export type HeaderOnlyMode = 'deliver' | 'reject' | 'envelope';
/** `mailbox`: a From (or Sender) that is not the sending mailbox becomes the mailbox; `never`: left alone (Send As granted). */
export type RewriteFromMode = 'mailbox' | 'never';

export interface MailboxConfig {
  /** Sender address or "@domain" (lower-case) → mailbox UPN. "<>" maps the null sender. */
  map: Record<string, string>;
  /** Per-mapping Sent Items override, same keys as `map`; absent keys use delivery.sentItems. */
  sentItems: Record<string, SentItemsMode>;
  /** Per-mapping From rewrite override, same keys as `map`; absent keys use `rewriteFrom`. */
  rewriteFromFor: Record<string, RewriteFromMode>;
  /** Per-mapping Graph account, same keys as `map` (src/policy/accounts.ts). */
  accountFor: Record<string, string>;
  rewriteFrom: RewriteFromMode;
  /** On a From rewrite, the original From goes into Reply-To when the message has none. */
  replyToOriginalFrom: boolean;
  useEnvelopeSender: boolean;
  /** Domains whose envelope senders send as themselves; empty: none; "*": any (explicit, never the default). */
  senderDomains: string[];
  fallback: string | null;
}

/** An outbound HTTP proxy for Entra ID and Graph (graph.proxy, or HTTPS_PROXY and NO_PROXY); src/net/outbound.ts uses it. */
export interface ProxyConfig {
  /** http(s)://host:port, without credentials. */
  url: string;
  username: string | null;
  password: string | null;
  /** Hosts reached directly, in NO_PROXY's syntax (src/net/no-proxy.ts). */
  noProxy: string[];
  /** Where the proxy was set: graph.proxy, or the environment variable's name. */
  source: string;
}

/**
 * One Graph account: an app registration (or managed identity) in a tenant and cloud. `graph:` is the
 * default account; `accounts:` adds more (src/config/graph.ts); src/policy/accounts.ts picks one per message.
 */
export interface GraphAccount extends CredentialInputs {
  name: string;
  cloud: CloudName;
  graphUrl: string;
  authorityHost: string;
  /** The sending mailboxes' domains this account serves: the domain rule of the account choice. */
  domains: string[];
  /** When the client secret expires (ms since the epoch; graph.clientSecretExpires), for the expiry metric. */
  clientSecretExpiresAt: number | null;
  /** false: the token's roles never make the relay refuse a message (permissions granted where the token cannot show them). */
  checkPermissions: boolean;
}

/** The default account and the network settings every account shares. */
export interface GraphConfig extends GraphAccount {
  maxRequestBytes: number;
  /** Graph's attachment upload budget per mailbox (150 MB per 5 minutes); the large route defers instead of exceeding it. */
  uploadBudgetBytes: number;
  uploadBudgetWindowMs: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** How often a certificate credential's file is checked for a rotation. */
  reloadCheckIntervalMs: number;
  /** Null: every request goes directly. Managed identity endpoints never use it (they are on the host). */
  proxy: ProxyConfig | null;
  /** graph.caFile's certificates (PEM), trusted besides the system's: a TLS-inspecting proxy's or a private endpoint's authority. */
  trustedCa: string | null;
}

/** Delivery status notifications to senders (src/delivery/bounce.ts). */
export interface BounceConfig {
  /** Mailbox (UPN) that sends notifications; null = no bounces, failed mail stays in dead/ only. */
  postmaster: string | null;
  /** Send a "delayed" notice once a message has waited this long (null = never). */
  delayWarningAfterMs: number | null;
}

export interface RelayConfig {
  hostname: string;
  listeners: ListenerConfig[];
  limits: {
    maxMessageSize: number;
    maxRecipients: number;
    maxReceivedHeaders: number;
    /** The whole header section as Graph gets it (the relay's own fields included); Exchange Online refuses more than 256 KB. */
    maxHeaderSize: number;
  } & FrontDoorLimits;
  /** SMTP AUTH users and sender policy (src/config/front-door.ts). */
  users: UserConfig[];
  policy: PolicyConfig;
  spool: { directory: string };
  delivery: DeliveryConfig;
  mailboxes: MailboxConfig;
  graph: GraphConfig;
  /** The accounts besides `graph:` (src/config/graph.ts). */
  accounts: GraphAccount[];
  /** The account of a message no rule assigns: "default" (the graph: section), or null when only `accounts:` has credentials. */
  defaultAccount: string | null;
  log: {
    level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
    /** Lines are written in batches at most this far apart (or per 4 KB); 0 writes each line at once. */
    flushIntervalMs: number;
  };
  /** Delivery status notifications to senders (src/delivery/bounce.ts). */
  bounces: BounceConfig;
  /** How long a SIGTERM waits for SMTP transactions and Graph requests under way. */
  shutdownGraceMs: number;
  /** Health, readiness, Prometheus metrics and the status page over HTTP (src/observability/admin.ts, src/web/). */
  admin: AdminConfig;
  /** The delivery history and the device view (src/history/). */
  history: HistoryConfig;
  /** Several replicas sharing Graph's limits on Redis (src/fleet/); redisUrl null: a single relay. */
  fleet: FleetConfig;
}


/** Graph takes at most 4 MB per request; base64 makes 3 raw bytes 4. */
export function maxRawForRequest(maxRequestBytes: number): number {
  return Math.floor(maxRequestBytes / 4) * 3;
}

/** Room left in a MIME sendMail request for the headers the relay adds (Received, Bcc). */
export const ADDED_HEADER_ALLOWANCE = 64 * 1024;

/** Graph's 4 MB request limit, read conservatively. */
export const DEFAULT_MAX_REQUEST_BYTES = 4_000_000;

export const MB = 1024 * 1024;
/** Exchange Online's default maximum message size, and the most Graph's large-message route can carry. */
export const DEFAULT_MAX_LARGE_MESSAGE = 35 * MB;
export const MAX_LARGE_MESSAGE = 150 * MB;

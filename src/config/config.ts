/** The relay's configuration as every part reads it: the settings' types and the limits derived from them (load.ts builds it). */

import type { CloudName } from './clouds.js';
import type { CredentialSetting } from './credentials.js';
import type { FrontDoorLimits, ListenerSecurity, PolicyConfig, UserConfig } from './front-door.js';
import type { AdminConfig, HistoryConfig } from './visibility.js';

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
  globalConcurrency: number;
  /** Optional pacing per mailbox, messages per minute; 0 = off. */
  messagesPerMinute: number;
  retry: RetryConfig;
  /** Messages too big for one sendMail request go through a draft and attachment uploads (needs Mail.ReadWrite). */
  largeMessages: boolean;
  /** keep: Graph saves a copy in Sent Items (MIME sendMail); discard: JSON sendMail with saveToSentItems false. */
  sentItems: SentItemsMode;
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
  rewriteFrom: RewriteFromMode;
  /** On a From rewrite, the original From goes into Reply-To when the message has none. */
  replyToOriginalFrom: boolean;
  useEnvelopeSender: boolean;
  /** Domains whose envelope senders send as themselves; empty: none; "*": any (explicit, never the default). */
  senderDomains: string[];
  fallback: string | null;
}

export interface GraphConfig {
  cloud: CloudName;
  graphUrl: string;
  authorityHost: string;
  tenantId: string | null;
  clientId: string | null;
  clientSecret: string | null;
  clientCertificatePath: string | null;
  /** Which credential gets Graph tokens; `auto` lets the inputs present decide (see src/auth/credential-selection.ts). */
  credential: CredentialSetting;
  /** Workload identity federation: a projected service-account token, read afresh for every token request. */
  federatedTokenFile: string | null;
  maxRequestBytes: number;
  /** Graph's attachment upload budget per mailbox (150 MB per 5 minutes); the large route defers instead of exceeding it. */
  uploadBudgetBytes: number;
  uploadBudgetWindowMs: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
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

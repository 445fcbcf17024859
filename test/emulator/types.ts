/** Shared record and option types of the Graph + Entra ID emulator. */
import type { IncomingHttpHeaders } from 'node:http';

/** The Graph operations the emulator implements; scripted steps may target one of them. */
export type GraphOp =
  | 'sendMail'
  | 'createDraft'
  | 'addAttachment'
  | 'createUploadSession'
  | 'uploadChunk'
  | 'cancelUpload'
  | 'sendDraft'
  | 'deleteDraft'
  | 'listSentItems';

/** Restricts a scripted step to one operation; without it the step matches any Graph operation. */
interface StepTarget {
  op?: GraphOp;
}

/**
 * One scripted response, consumed FIFO by the next matching Graph request:
 * - status: answer with a Graph error of that status (no side effect)
 * - reset: read the body, then destroy the socket without answering (no side effect)
 * - resetBeforeBody: destroy the socket as soon as the headers arrive
 * - acceptThenReset: handle normally (the mail IS recorded), then destroy instead of answering
 * - acceptThenHang: handle normally (the mail IS recorded), then never answer (the client's timeout fires)
 * - acceptThenStatus: handle normally (the mail IS recorded), then answer with that error status (a 5xx after the fact)
 * - delayMs: handle normally, but answer that much later (the mail is recorded even if the client gave up)
 * - accept: handle normally (placeholder to skip a request)
 */
export type ScriptStep = StepTarget &
  (
    | { status: number; code?: string; message?: string; retryAfter?: number | string }
    | { reset: true }
    | { resetBeforeBody: true }
    | { acceptThenReset: true }
    | { acceptThenHang: true }
    | { acceptThenStatus: number; code?: string }
    | { delayMs: number }
    | { accept: true }
  );

/** Scripted answers of the token endpoint (Entra outages). */
export type TokenStep =
  | { status: number; error?: string; aadsts?: number; description?: string; retryAfter?: number | string }
  | { reset: true }
  | { delayMs: number }
  | { accept: true };

export interface FaultSettings {
  latencyMs: number;
  jitterMs: number;
  /** 0..1: fraction of sendMail requests answered with 429 (Retry-After 1), 503 or a reset, chosen at random. */
  randomFaultRate: number;
  mailboxConcurrency: number;
  /** How long after Graph accepted a message its copy shows in Sent Items (a look-up before that finds nothing). */
  sentItemsDelayMs: number;
  /** 0..1: fraction of message submissions (sendMail, sending a draft) recorded and then reset instead of answered. */
  acceptThenResetRate: number;
  /** 0..1: fraction of message submissions recorded and then never answered (the client's timeout fires). */
  acceptThenHangRate: number;
}

export type DownMode = '503' | 'reset' | false;

export interface Attachment {
  id: string;
  kind: 'file' | 'item';
  via: 'direct' | 'uploadSession';
  name: string;
  contentType?: string;
  size: number;
  isInline: boolean;
  contentId?: string;
  bytes?: Buffer;
  sha256?: string;
  item?: unknown;
}

export interface Draft {
  id: string;
  upn: string;
  createdAt: Date;
  requestId: string;
  contentType: string;
  mime?: Buffer;
  json?: Record<string, unknown>;
  attachments: Attachment[];
  /** Assigned when the draft is made: its Message-ID, or one Exchange makes up. */
  internetMessageId: string;
}

/** A message Graph accepted for delivery: a sendMail call or a sent draft. */
export interface SentRecord {
  via: 'sendMail' | 'draft';
  upn: string;
  /** The tenant whose token sent it. */
  tenantId?: string;
  requestId: string;
  clientRequestId?: string;
  /** Media type of the sendMail body, or of the draft-creation body for drafts. */
  contentType: string;
  at: Date;
  headers: IncomingHttpHeaders;
  /** Decoded MIME (text/plain bodies). */
  mime?: Buffer;
  /** Parsed JSON body: the whole sendMail body, or the draft's message resource. */
  json?: unknown;
  /** To/Cc/Bcc addresses Graph would deliver to (MIME headers, or the JSON recipient lists). */
  recipients: string[];
  /** Bytes of the decoded MIME, or of the raw JSON body. */
  size: number;
  sha256: string;
  draftId?: string;
  attachments?: Attachment[];
  /** The Message-ID Exchange keeps for it (the message's own, or one it made up). */
  internetMessageId: string;
  /** Whether a copy went to Sent Items (false: JSON sendMail with saveToSentItems false). */
  savedToSentItems: boolean;
}

/** A copy in a mailbox's Sent Items. */
export interface SentItem {
  id: string;
  internetMessageId: string;
  sentDateTime: string;
  subject: string;
  /** Epoch ms from which a look-up sees it. */
  visibleAt: number;
}

export interface RequestLogEntry {
  /** The peer's address: the relay, or the proxy it went through. */
  remoteAddress?: string;
  /** The tenant of the bearer token (Graph requests with one). */
  tenantId?: string;
  method: string;
  path: string;
  op?: GraphOp;
  upn?: string;
  requestId: string;
  at: Date;
  /** Requests already in flight for this mailbox when this one arrived. */
  inFlightAtStart: number;
  /** HTTP status sent; 0 while pending or when the connection was reset instead. */
  status: number;
  reset: boolean;
}

export interface TokenRequestRecord {
  /** The tenant in the token URL, and the peer's address (the relay, or the proxy it went through). */
  tenantId?: string;
  remoteAddress?: string;
  at: Date;
  ok: boolean;
  status: number;
  credential?: 'secret' | 'certificate' | 'assertion';
  /** The raw client_assertion, when one was sent. */
  assertion?: string;
  error?: string;
}

/** Every HTTP request the emulator received (Entra ID, Graph, uploads, control), with the peer's address. */
export interface PeerRecord {
  method: string;
  path: string;
  remoteAddress: string;
}

/** Another tenant on the same origin, with its own app registration, roles and mailboxes. */
export interface TenantOptions {
  tenantId: string;
  clientId: string;
  clientSecret?: string;
  /** Registered certificate(s) of this tenant's app. */
  clientCertPem?: string | string[];
  /** Application roles in its tokens; default Mail.Send and Mail.ReadWrite. */
  roles?: string[];
  /** When set, any other user gets 404 ErrorInvalidUser with this tenant's tokens. */
  mailboxes?: string[];
}

export interface MailboxStats {
  accepted: number;
  maxInFlight: number;
  throttled: number;
  inFlight: number;
}

export interface EmulatorStats {
  perMailbox: Record<string, MailboxStats>;
  throttled429: number;
  requests: number;
  tokenRequests: number;
}

/** The one JSON line the standalone runner (main.ts) prints: how another process reaches the emulator. */
export interface RunnerInfo {
  graphUrl: string;
  authorityHost: string;
  authority: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  caCertPath: string;
  clientPemPath: string;
  clientThumbprintSha256: string;
  clientThumbprintSha1: string;
  controlUrl: string;
}

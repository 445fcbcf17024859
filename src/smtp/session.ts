/** What one listener's parts share: its settings, its sessions' state, the rule a session sends under, and how it refuses. */

import type { SMTPServerSession } from 'smtp-server';
import type { ListenerConfig, RelayConfig } from '../config/config.js';
import type { SmtpReply } from '../errors.js';
import type { MessageData } from '../mime/message-file.js';
import type { Logger } from '../observability/logger.js';
import type { AccountChoice, AccountSelector } from '../policy/accounts.js';
import type { SenderRule, SessionMailbox } from '../policy/senders.js';
import type { Envelope } from '../spool/envelope.js';
import type { Spool } from '../spool/spool.js';
import type { FrontDoorShared } from './shared.js';

/** A passthrough listener's answer to DATA, from Graph's verdict (the app layer turns one into the other). */
export type PassthroughAnswer = { accepted: true; text: string } | { accepted: false; code: number; text: string };

export interface SmtpEvents {
  /** Called after the spool commit, before the 250 goes out; `receivedAtMs` is env.receivedAt as a number. */
  accepted(env: Envelope, receivedAtMs: number, facts: AcceptedFacts): void;
  /** `session` is absent for a line refused before the session began (a PROXY header from an untrusted peer). */
  rejected(reason: string, session?: SMTPServerSession, reply?: string): void;
  /** Passthrough listeners: send now and answer with Graph's verdict instead of queueing. */
  passthrough?: (env: Envelope, data: MessageData) => Promise<PassthroughAnswer>;
  /** A client connected to this listener (before any check), for session metrics. */
  session?(listener: string): void;
  /** A TLS handshake failed (a client's doing: a scanner, a plaintext hello), by OpenSSL's reason. */
  tlsFailure?(listener: string, reason: string): void;
  /**
   * The largest message an account can send and why, when its permissions make it smaller than
   * limits.maxMessageSize (no Mail.ReadWrite: one Graph request); null otherwise. Checked at MAIL FROM
   * SIZE= and at the end of DATA.
   */
  sizeLimit?(account: string): { bytes: number; why: string } | null;
}

/** The account a transaction sends through, and the rule that chose it (src/policy/accounts.ts). */
export type SessionAccount = AccountChoice & { ok: true };

/** What the delivery history records of an accepted message besides its envelope. */
export interface AcceptedFacts {
  messageId: string | null;
  /** Only when history.storeSubjects allows it. */
  subject: string | null;
  /** The AUTH user, or null. */
  user: string | null;
  /** The TLS version of the session (TLSv1.3, …), or null in clear. */
  tls: string | null;
}

export interface SessionState {
  counted: boolean;
  messages: number;
  /** The current transaction's mailbox, decided at MAIL FROM (sender and session rights cannot change before DATA). */
  mailbox: SessionMailbox | null;
  /** The current transaction's Graph account, decided at MAIL FROM with the mailbox. */
  account: SessionAccount | null;
}

export interface ListenerContext {
  listener: ListenerConfig;
  /** `listeners[i]`: how replies and logs name this listener's settings. */
  key: string;
  cfg: RelayConfig;
  spool: Spool;
  log: Logger;
  events: SmtpEvents;
  shared: FrontDoorShared;
  /** Chooses the Graph account of a transaction. */
  accounts: AccountSelector;
  /** Per-session state, by session id; removed when the session closes. */
  sessions: Map<string, SessionState>;
  /** The rights of a session: its user's, else the network rule of its address (null: no sender restriction). */
  ruleFor(session: SMTPServerSession): SenderRule | null;
  /** Logs and counts a refusal, and returns the reply to send. */
  reject(session: SMTPServerSession, reason: string, reply: SmtpReply): SmtpReply;
}

/** RFC 4954 section 4: the reply to AUTH on a session that must be encrypted first. */
export function authNeedsTls(ctx: Pick<ListenerContext, 'key'>): string {
  return `5.7.11 Encryption required for requested authentication mechanism: issue STARTTLS first (${ctx.key}.allowInsecureAuth is off)`;
}

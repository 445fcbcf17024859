/** A message's envelope as the spool keeps it: what SMTP said, what the relay decided, and how delivery went. */

export type SpoolState = 'queue' | 'dead';

export interface LastError {
  at: string;
  kind: 'transient' | 'permanent';
  reason: string;
  status?: number;
  code?: string;
  message: string;
  requestId?: string;
}

export interface PendingLookup {
  /** When the outcome became unknown (the attempt's end, or the restart after a crash): the look-ups are timed from here. */
  since: string;
  /** Look-ups made so far. */
  lookups: number;
  /** Why the outcome is unknown: the attempt's failure reason, or `crash`. */
  reason: string;
  /** The route of that attempt, when known (for the delivered metric). */
  route?: string;
}

export interface Envelope {
  version: 1;
  id: string;
  /** '' is the null sender <>. */
  mailFrom: string;
  rcptTo: string[];
  /** The mailbox (UPN) whose /users/{upn}/sendMail sends this message. */
  mailbox: string;
  /** The Graph account that sends it, decided at acceptance (src/policy/accounts.ts); absent in older spools: "default". */
  account?: string;
  /** Envelope recipients that are not in To/Cc; delivery adds them as a Bcc: header. */
  bcc: string[];
  clientAddress: string;
  clientHostname: string;
  helo: string;
  listener: string;
  receivedAt: string;
  /** Bytes of the message (as received plus our Received: header) at the start of its .msg file. */
  size: number;
  /** The Message-ID the message was queued with (cleanup adds one when the client sent none); absent in older spools. */
  messageId?: string;
  attempts: number;
  nextAttemptAt: string;
  lastError: LastError | null;
  /** Set once the message was sent again after an attempt whose outcome could not be checked (at-least-once). */
  possibleDuplicate?: boolean;
  /**
   * An attempt ended without knowing whether Graph sent the message (no answer after the whole request, a
   * 5xx after it, or a crash with the attempt in flight): the sending mailbox's Sent Items is looked up
   * before the message is sent again.
   */
  pendingLookup?: PendingLookup;
  /** Set on delivery status notifications the relay generated itself, so they are never bounced. */
  isBounce?: boolean;
  /** Set once a "delayed" notice went to the sender, so it goes only once. */
  delayWarned?: boolean;
}

/** The account a spooled message goes out through. */
export function accountOf(env: Pick<Envelope, 'account'>): string {
  return env.account ?? 'default';
}

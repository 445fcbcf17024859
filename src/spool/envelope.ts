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
  attempts: number;
  nextAttemptAt: string;
  lastError: LastError | null;
  /** Set once an attempt ended in a way that Graph may have sent the message anyway. */
  possibleDuplicate?: boolean;
  /** Set on delivery status notifications the relay generated itself, so they are never bounced. */
  isBounce?: boolean;
  /** Set once a "delayed" notice went to the sender, so it goes only once. */
  delayWarned?: boolean;
}

/** The account a spooled message goes out through. */
export function accountOf(env: Pick<Envelope, 'account'>): string {
  return env.account ?? 'default';
}

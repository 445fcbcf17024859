/** What the delivery history keeps: records sent from the relay's event loop to the history worker, and what queries return. */

/** A message accepted over SMTP (or made by the relay: a delivery status notification). */
export interface AcceptedRecord {
  t: 'accepted';
  qid: string;
  at: number;
  listener: string;
  client: string;
  user: string | null;
  tls: string | null;
  helo: string;
  sender: string;
  rcpts: string[];
  mailbox: string;
  /** The Graph account that sends it (several tenants or app registrations); absent: the default. */
  account?: string | null;
  messageId: string | null;
  size: number;
  subject: string | null;
  /** Set on notices the relay made itself (the qid of the message they are about, when known). */
  dsnFor?: string | null;
}

/** One step of a message's story after acceptance. */
export interface EventRecord {
  t: 'event';
  qid: string;
  at: number;
  kind: HistoryEventKind;
  /** The state the message is in afterwards (null: unchanged). */
  state: MessageState | null;
  attempt?: number;
  status?: number;
  code?: string;
  requestId?: string;
  reason?: string;
  route?: string;
  /** Graph's or the relay's text about it; never a message body. */
  detail?: string;
  /** Who asked (queue tools and the status page). */
  by?: string;
  /** The DSN's queue id (bounced, delay notice). */
  dsn?: string;
}

export type HistoryEventKind = 'delivered' | 'deferred' | 'dead-lettered' | 'bounced' | 'delay-notice' | 'requeued' | 'retry' | 'deleted' | 'vanished' | 'outcome-unknown';
export type MessageState = 'queued' | 'delivered' | 'dead' | 'bounced' | 'deleted';

/** A device's state as persisted (the tracker in memory is the truth while the relay runs). */
export interface DeviceRow {
  id: string;
  /** 'user' (AUTH user) or 'address' (client address). */
  kind: 'user' | 'address';
  firstSeen: number;
  lastSeen: number;
  /** UTC day (YYYY-MM-DD) that `today` counts. */
  day: string;
  today: number;
  total: number;
  /** Moving average of the gaps between its messages, ms (0 until it has sent twice). */
  gapMs: number;
  lastError: string | null;
  lastErrorAt: number | null;
  tls: string | null;
  /** The last client address (for a user) or the last AUTH user (for an address). */
  via: string | null;
}

export type HistoryRecord = AcceptedRecord | EventRecord;

/** A search: any combination; the most selective key is looked up in the index, the rest filter. */
export interface HistoryQuery {
  qid?: string;
  messageId?: string;
  sender?: string;
  recipient?: string;
  client?: string;
  user?: string;
  state?: MessageState;
  /** ms since the epoch, inclusive. */
  since?: number;
  until?: number;
  limit?: number;
}

/** An accepted message as queries return it: what was recorded at acceptance, and where it stands now. */
export interface MessageSummary extends Omit<AcceptedRecord, 't' | 'account' | 'dsnFor'> {
  account: string | null;
  state: MessageState;
  stateAt: number;
  attempts: number;
  lastError: string | null;
}

export interface StoryEvent extends Omit<EventRecord, 't' | 'qid'> {}

export interface MessageStory extends MessageSummary {
  events: StoryEvent[];
}

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;

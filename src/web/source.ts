/** What the status page shows and does, as app/ provides it: the page itself reads nothing else. */

import type { Readable } from 'node:stream';
import type { DeviceView } from '../history/devices.js';
import type { HistoryQuery, MessageStory, MessageSummary } from '../history/types.js';

export interface QueueSummary {
  queued: number;
  oldestQueuedSeconds: number;
  dead: number;
  oldestDeadSeconds: number;
  inFlight: number;
  devices: number;
  devicesSilent: number;
  /** False when history.enabled is off: no search, no devices. */
  history: boolean;
  now: number;
}

export interface MailboxRow {
  mailbox: string;
  queued: number;
  oldestSeconds: number;
  inFlight: number;
  /** ms since the epoch; null when not paused. */
  pausedUntil: number | null;
  lastError: string | null;
  lastErrorAt: number | null;
}

export interface SpoolMessage {
  qid: string;
  receivedAt: string;
  mailbox: string;
  sender: string;
  rcpts: string[];
  size: number;
  attempts: number;
  lastError: string | null;
}

/** Exchange's own per-recipient verdict (Graph message trace), or why there is none. */
export interface TraceAnswer {
  /** 'ok': rows below; 'no-permission': the tenant has not granted ExchangeMessageTrace.Read.All; 'unavailable': capture mode, history off, an error. */
  status: 'ok' | 'no-permission' | 'unavailable' | 'not-found';
  message?: string;
  rows?: { recipient: string; status: string; received: string | null; subject?: string | null; size?: number | null; fromIP?: string | null }[];
  cachedAt?: number;
}

export type PageAction = 'retry' | 'requeue' | 'delete';

export interface StatusSource {
  summary(): Promise<QueueSummary>;
  mailboxes(): Promise<MailboxRow[]>;
  deadLetters(): Promise<SpoolMessage[]>;
  search(q: HistoryQuery): Promise<MessageSummary[]>;
  /** The story, and where the message is now in the spool (null: nothing kept). */
  story(qid: string): Promise<(MessageStory & { spool: 'queue' | 'dead' | null }) | null>;
  devices(): DeviceView[];
  act(action: PageAction, qid: string, by: string): Promise<{ ok: boolean; message: string }>;
  eml(qid: string): Promise<{ size: number; open(): Readable } | null>;
  trace(qid: string): Promise<TraceAnswer>;
}

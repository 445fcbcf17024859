/** Queue statistics cheap enough for every scrape: queued messages in memory, dead letters by readdir. */

import { readdir } from 'node:fs/promises';
import { queueIdOfFile, queueIdTime } from '../spool/queue-id.js';

export interface MailboxQueueStat {
  mailbox: string;
  messages: number;
  oldestAgeSeconds: number;
}

export interface QueueSnapshot {
  messages: number;
  oldestAgeSeconds: number;
  /** The `top` mailboxes by queue size, then one "other" row for the rest (when there is a rest). */
  mailboxes: MailboxQueueStat[];
}

export const OTHER_MAILBOXES = 'other';

interface Tracked {
  mailbox: string;
  receivedAt: number;
}

/**
 * The queue as a scrape sees it, without reading envelopes: every message of the active set (the ones the
 * scheduler holds, at most delivery.activeLimit) with its mailbox and arrival time, fed by the SMTP and
 * delivery events; the rest of queue/ (left on disk until the active set has room) only as a count and the
 * arrival time of its oldest, so memory does not grow with the queue.
 */
export class QueueTracker {
  private readonly byId = new Map<string, Tracked>();
  /** Messages in queue/ that are not in the active set. */
  private onDisk = 0;
  /** Arrival of the oldest of them, as far as known (ms; Infinity: none). */
  private onDiskOldest = Infinity;

  add(id: string, mailbox: string, receivedAt: string | number): void {
    const t = typeof receivedAt === 'number' ? receivedAt : Date.parse(receivedAt);
    this.byId.set(id, { mailbox: mailbox.toLowerCase(), receivedAt: Number.isFinite(t) ? t : Date.now() });
  }

  /** Leaves the active set (delivered, failed for good, deleted); a message not in it is ignored. */
  remove(id: string): void {
    this.byId.delete(id);
  }

  /** `n` messages in queue/ that are not in the active set, the oldest of them received at `oldest`. */
  addOnDisk(n: number, oldest: number): void {
    if (n <= 0) return;
    this.onDisk += n;
    if (oldest < this.onDiskOldest) this.onDiskOldest = oldest;
  }

  /** One of the messages on disk left it: loaded into the active set, or deleted by a queue tool. */
  removeOnDisk(): void {
    if (this.onDisk > 0) this.onDisk--;
    if (this.onDisk === 0) this.onDiskOldest = Infinity;
  }

  /** Messages in the active set. */
  get active(): number {
    return this.byId.size;
  }

  get waitingOnDisk(): number {
    return this.onDisk;
  }

  get size(): number {
    return this.byId.size + this.onDisk;
  }

  /** The mailbox rows count the active set; `messages` and the oldest age count the messages on disk too. */
  snapshot(now: number, top: number): QueueSnapshot {
    const per = new Map<string, { messages: number; oldest: number }>();
    let oldest = this.onDisk > 0 ? Math.min(now, this.onDiskOldest) : now;
    for (const t of this.byId.values()) {
      if (t.receivedAt < oldest) oldest = t.receivedAt;
      const m = per.get(t.mailbox);
      if (m) {
        m.messages++;
        if (t.receivedAt < m.oldest) m.oldest = t.receivedAt;
      } else per.set(t.mailbox, { messages: 1, oldest: t.receivedAt });
    }
    const ranked = [...per.entries()].sort((a, b) => b[1].messages - a[1].messages || a[0].localeCompare(b[0]));
    const age = (at: number): number => Math.max(0, (now - at) / 1000);
    const mailboxes: MailboxQueueStat[] = ranked.slice(0, top).map(([mailbox, m]) => ({ mailbox, messages: m.messages, oldestAgeSeconds: age(m.oldest) }));
    const rest = ranked.slice(top);
    if (rest.length > 0) {
      mailboxes.push({
        mailbox: OTHER_MAILBOXES,
        messages: rest.reduce((n, [, m]) => n + m.messages, 0),
        oldestAgeSeconds: age(Math.min(...rest.map(([, m]) => m.oldest))),
      });
    }
    return { messages: this.size, oldestAgeSeconds: age(oldest), mailboxes };
  }
}

/** Dead letters: one readdir; the oldest comes from the smallest (time-ordered) queue id, no file is opened. */
export async function deadLetterStats(deadDir: string, now: number): Promise<{ messages: number; oldestAgeSeconds: number }> {
  let files: string[];
  try {
    files = await readdir(deadDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { messages: 0, oldestAgeSeconds: 0 };
    throw err;
  }
  let messages = 0;
  let first: string | null = null;
  for (const f of files) {
    const id = queueIdOfFile(f);
    if (id === null) continue;
    messages++;
    if (first === null || id < first) first = id;
  }
  return { messages, oldestAgeSeconds: first === null ? 0 : Math.max(0, (now - queueIdTime(first)) / 1000) };
}

/** Queue statistics cheap enough for every scrape: queued messages in memory, dead letters by readdir. */

import { readdir } from 'node:fs/promises';
import { QUEUE_ID_RE, queueIdTime } from '../spool/queue-id.js';

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
 * Every queued message's mailbox and arrival time, fed by the SMTP and delivery events, so that a
 * scrape never reads envelopes.
 */
export class QueueTracker {
  private readonly byId = new Map<string, Tracked>();

  add(id: string, mailbox: string, receivedAt: string | number): void {
    const t = typeof receivedAt === 'number' ? receivedAt : Date.parse(receivedAt);
    this.byId.set(id, { mailbox: mailbox.toLowerCase(), receivedAt: Number.isFinite(t) ? t : Date.now() });
  }

  remove(id: string): void {
    this.byId.delete(id);
  }

  get size(): number {
    return this.byId.size;
  }

  snapshot(now: number, top: number): QueueSnapshot {
    const per = new Map<string, { messages: number; oldest: number }>();
    let oldest = now;
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
    return { messages: this.byId.size, oldestAgeSeconds: age(oldest), mailboxes };
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
    if (!f.endsWith('.msg')) continue;
    const id = f.slice(0, -4);
    if (!QUEUE_ID_RE.test(id)) continue;
    messages++;
    if (first === null || id < first) first = id;
  }
  return { messages, oldestAgeSeconds: first === null ? 0 : Math.max(0, (now - queueIdTime(first)) / 1000) };
}

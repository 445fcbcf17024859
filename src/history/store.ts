/** The history's tables: writing a batch of records, searching, a message's story, devices, and retention. */

import { queueIdAt } from '../spool/queue-id.js';
import { openDatabase, retryBusy, Statements, usedBytes, type Row } from './database.js';
import { DEFAULT_LIMIT, MAX_LIMIT, type AcceptedRecord, type DeviceRow, type EventRecord, type HistoryQuery, type HistoryRecord, type MessageStory, type MessageSummary, type StoryEvent } from './types.js';

/** Message-IDs are searched without their angle brackets and case. */
export function normalizeMessageId(id: string): string {
  return id.trim().replace(/^<|>$/g, '').toLowerCase();
}

/** The index entries of a message: one per thing it can be found by (besides its queue id and time). */
export function keysOf(r: Pick<AcceptedRecord, 'sender' | 'rcpts' | 'client' | 'user' | 'messageId'>): string[] {
  const keys = new Set<string>([`s:${r.sender.toLowerCase() || '<>'}`, `c:${r.client}`]);
  for (const a of r.rcpts) keys.add(`r:${a.toLowerCase()}`);
  if (r.user) keys.add(`u:${r.user.toLowerCase()}`);
  if (r.messageId) keys.add(`m:${normalizeMessageId(r.messageId)}`);
  return [...keys];
}

const MSG_COLUMNS = 'm.qid, m.at, m.listener, m.client, m.user, m.tls, m.helo, m.sender, m.rcpts, m.mailbox, m.account, m.message_id, m.size, m.subject, m.state, m.state_at, m.attempts, m.last_error';

export class HistoryStore {
  private readonly st: Statements;
  /** Distinguishes events of one message in one millisecond. */
  private n = 0;

  constructor(readonly file: string, opts: { readOnly?: boolean } = {}) {
    this.st = new Statements(openDatabase(file, opts));
  }

  get db(): Statements['db'] {
    return this.st.db;
  }

  close(): void {
    this.st.close();
  }

  /** One transaction for a batch: what the relay's event loop gathered in the last second. */
  write(records: readonly HistoryRecord[], devices: readonly DeviceRow[] = []): void {
    this.db.exec('BEGIN');
    try {
      for (const r of records) {
        if (r.t === 'accepted') this.accepted(r);
        else this.event(r);
      }
      const dev = this.st.get('INSERT OR REPLACE INTO device(id, data) VALUES (?, ?)');
      for (const d of devices) dev.run([d.id, JSON.stringify(d)]);
      this.db.exec('COMMIT');
    } catch (err) {
      this.rollback();
      throw err;
    }
  }

  private accepted(r: AcceptedRecord): void {
    const res = this.st
      .get('INSERT OR IGNORE INTO msg(qid, at, listener, client, user, tls, helo, sender, rcpts, mailbox, account, message_id, size, subject, state, state_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)')
      .run([r.qid, r.at, r.listener, r.client, r.user, r.tls, r.helo, r.sender, JSON.stringify(r.rcpts), r.mailbox, r.account ?? null, r.messageId, r.size, r.subject, 'queued', r.at]);
    if (res.changes === 0) return;
    const key = this.st.get('INSERT OR IGNORE INTO k(k, qid) VALUES (?, ?)');
    for (const k of keysOf(r)) key.run([k, r.qid]);
  }

  private event(r: EventRecord): void {
    const { t: _t, qid, at, kind, state, ...data } = r;
    this.n = (this.n + 1) % 1_000_000;
    this.st.get('INSERT INTO ev(qid, at, n, kind, data) VALUES (?,?,?,?,?)').run([qid, at, this.n, kind, JSON.stringify(data)]);
    const attempts = r.attempt ?? null;
    const error = kind === 'deferred' || kind === 'dead-lettered' || kind === 'bounced' ? [r.status, r.code ?? r.reason, r.detail].filter((x) => x !== undefined && x !== '').join(' ') : null;
    this.st
      .get('UPDATE msg SET state = COALESCE(?, state), state_at = CASE WHEN ? IS NULL THEN state_at ELSE ? END, attempts = MAX(attempts, COALESCE(?, 0)), last_error = COALESCE(?, last_error) WHERE qid = ?')
      .run([state, state, at, attempts, error, qid]);
  }

  /** Messages matching every criterion given, newest first. */
  search(q: HistoryQuery): MessageSummary[] {
    return this.read(() => this.find(q));
  }

  /** Reads wait (up to 5 s) while the writer holds the file, as writes wait for readers. */
  private read<T>(fn: () => T): T {
    return retryBusy(() => {
      try {
        return fn();
      } catch (err) {
        this.st.forget();
        throw err;
      }
    });
  }

  private find(q: HistoryQuery): MessageSummary[] {
    const limit = Math.min(Math.max(1, q.limit ?? DEFAULT_LIMIT), MAX_LIMIT);
    const low = q.since !== undefined ? queueIdAt(q.since, 'first') : '';
    const high = q.until !== undefined ? queueIdAt(q.until, 'last') : '~';
    const keyed: string[] = [];
    if (q.messageId) keyed.push(`m:${normalizeMessageId(q.messageId)}`);
    if (q.recipient) keyed.push(`r:${q.recipient.trim().toLowerCase()}`);
    if (q.sender !== undefined && q.sender !== '') keyed.push(`s:${q.sender.trim().toLowerCase()}`);
    if (q.user) keyed.push(`u:${q.user.trim().toLowerCase()}`);
    if (q.client) keyed.push(`c:${q.client.trim()}`);
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.qid) {
      where.push('m.qid = ?');
      args.push(q.qid.trim());
    }
    for (const k of keyed.slice(1)) {
      where.push('EXISTS (SELECT 1 FROM k AS k2 WHERE k2.k = ? AND k2.qid = m.qid)');
      args.push(k);
    }
    if (q.state) {
      where.push('m.state = ?');
      args.push(q.state);
    }
    const extra = where.map((w) => ` AND ${w}`).join('');
    const rows = keyed[0]
      ? this.db.all(`SELECT ${MSG_COLUMNS} FROM k JOIN msg AS m ON m.qid = k.qid WHERE k.k = ? AND k.qid BETWEEN ? AND ?${extra} ORDER BY k.qid DESC LIMIT ?`, [keyed[0], low, high, ...args, limit])
      : this.db.all(`SELECT ${MSG_COLUMNS} FROM msg AS m WHERE m.qid BETWEEN ? AND ?${extra} ORDER BY m.qid DESC LIMIT ?`, [low, high, ...args, limit]);
    return (rows as Row[]).map(summary);
  }

  story(qid: string): MessageStory | null {
    return this.read(() => this.tell(qid));
  }

  private tell(qid: string): MessageStory | null {
    const m = this.db.get(`SELECT ${MSG_COLUMNS} FROM msg AS m WHERE m.qid = ?`, [qid]) as Row | null;
    const events = (this.db.all('SELECT at, kind, data FROM ev WHERE qid = ? ORDER BY at, n', [qid]) as Row[]).map(
      (e): StoryEvent => ({ at: Number(e.at), kind: String(e.kind) as StoryEvent['kind'], state: null, ...(JSON.parse(String(e.data ?? '{}')) as object) }),
    );
    if (!m && events.length === 0) return null;
    const base: MessageSummary = m ? summary(m) : { qid, at: events[0]!.at, listener: '', client: '', user: null, tls: null, helo: '', sender: '', rcpts: [], mailbox: '', account: null, messageId: null, size: 0, subject: null, state: 'queued', stateAt: events[0]!.at, attempts: 0, lastError: null };
    return { ...base, events };
  }

  devices(): DeviceRow[] {
    return this.read(() => (this.db.all('SELECT data FROM device') as Row[]).map((r) => JSON.parse(String(r.data)) as DeviceRow));
  }

  /**
   * Removes the oldest messages: those older than `before`, then more while the file is over `maxBytes`.
   * At most `chunk` messages per call, so that the writer is never held up long; returns how many went.
   */
  prune(before: number, maxBytes: number, chunk = 2000): number {
    let rows = this.db.all('SELECT qid, client, user, sender, rcpts, message_id FROM msg WHERE qid < ? ORDER BY qid LIMIT ?', [queueIdAt(before, 'first'), chunk]) as Row[];
    if (rows.length === 0 && usedBytes(this.db) > maxBytes) rows = this.db.all('SELECT qid, client, user, sender, rcpts, message_id FROM msg ORDER BY qid LIMIT ?', [chunk]) as Row[];
    if (rows.length === 0) return 0;
    this.db.exec('BEGIN');
    try {
      const delKey = this.st.get('DELETE FROM k WHERE k = ? AND qid = ?');
      for (const r of rows) {
        const rec = { sender: String(r.sender ?? ''), client: String(r.client ?? ''), user: r.user === null ? null : String(r.user), messageId: r.message_id === null ? null : String(r.message_id), rcpts: JSON.parse(String(r.rcpts ?? '[]')) as string[] };
        for (const k of keysOf(rec)) delKey.run([k, r.qid as string]);
      }
      const last = String(rows[rows.length - 1]!.qid);
      this.st.get('DELETE FROM ev WHERE qid <= ?').run([last]);
      this.st.get('DELETE FROM msg WHERE qid <= ?').run([last]);
      this.st.get("DELETE FROM device WHERE json_extract(data, '$.lastSeen') < ?").run([Math.floor(before)]);
      this.db.exec('COMMIT');
    } catch (err) {
      this.rollback();
      throw err;
    }
    this.db.exec('PRAGMA incremental_vacuum');
    return rows.length;
  }

  private rollback(): void {
    this.st.forget();
    if (this.db.inTransaction) this.db.exec('ROLLBACK');
  }

  count(): number {
    return Number((this.db.get('SELECT count(*) AS n FROM msg') as Row).n);
  }
}

function summary(r: Row): MessageSummary {
  const s = (v: Row[string] | undefined): string => (v === null || v === undefined ? '' : String(v));
  const n = (v: Row[string] | undefined): string | null => (v === null || v === undefined ? null : String(v));
  return {
    qid: s(r.qid),
    at: Number(r.at),
    listener: s(r.listener),
    client: s(r.client),
    user: n(r.user),
    tls: n(r.tls),
    helo: s(r.helo),
    sender: s(r.sender),
    rcpts: JSON.parse(s(r.rcpts) || '[]') as string[],
    mailbox: s(r.mailbox),
    account: n(r.account),
    messageId: n(r.message_id),
    size: Number(r.size ?? 0),
    subject: n(r.subject),
    state: s(r.state) as MessageSummary['state'],
    stateAt: Number(r.state_at ?? r.at),
    attempts: Number(r.attempts ?? 0),
    lastError: n(r.last_error),
  };
}

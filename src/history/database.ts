/**
 * The history's SQLite file (node-sqlite3-wasm: SQLite compiled to WebAssembly, no native code, the same on
 * every platform Node runs on). One writer, the relay's history worker; the command line reads it directly.
 */

import { rmSync, statSync } from 'node:fs';
import sqlite from 'node-sqlite3-wasm';

export type Db = InstanceType<typeof sqlite.Database>;
export type Row = Record<string, number | bigint | string | Uint8Array | null>;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS msg(
  qid TEXT PRIMARY KEY, at INTEGER NOT NULL, listener TEXT, client TEXT, user TEXT, tls TEXT, helo TEXT,
  sender TEXT, rcpts TEXT, mailbox TEXT, account TEXT, message_id TEXT, size INTEGER, subject TEXT,
  state TEXT NOT NULL, state_at INTEGER, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ev(qid TEXT NOT NULL, at INTEGER NOT NULL, n INTEGER NOT NULL, kind TEXT NOT NULL, data TEXT, PRIMARY KEY(qid, at, n)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS k(k TEXT NOT NULL, qid TEXT NOT NULL, PRIMARY KEY(k, qid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS device(id TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
`;

/**
 * SQLite's own page cache, in KiB. It lives in the WebAssembly memory, which never shrinks, so a relay that
 * has written a large history keeps all of it. 8 MB, not 32: the file's pages stay in the OS's cache anyway;
 * `npm run bench:history` at 300,000 messages, back to back: fill 97 against 93 µs CPU per message, lookups
 * no slower; at 1,000,000: every lookup under 9 ms.
 */
const CACHE_KIB = 8192;

/** No transaction takes this long: a lock folder older than this was left by a process that died holding it. */
const STALE_LOCK_MS = 60_000;

/**
 * Opens (and creates) the file. Rollback journal, normal locking: the relay's worker writes once a second in
 * one short transaction and a command line may read between; `synchronous=NORMAL` syncs at each commit, so a
 * crash loses at most the batch being written. The mail itself never waits for this file.
 */
export function openDatabase(file: string, opts: { readOnly?: boolean } = {}): Db {
  clearStaleLock(file);
  const db = new sqlite.Database(file, { readOnly: opts.readOnly === true, fileMustExist: opts.readOnly === true });
  if (opts.readOnly) return db;
  retryBusy(() => {
    db.exec('PRAGMA auto_vacuum=INCREMENTAL'); // only takes effect on a new file: the size limit can then shrink it
    db.exec(`PRAGMA journal_mode=TRUNCATE; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-${CACHE_KIB}; PRAGMA temp_store=MEMORY`);
    db.exec(SCHEMA);
  });
  return db;
}

/** node-sqlite3-wasm locks with a folder beside the file (mkdir is atomic); one left by a killed process would lock it forever. */
export function clearStaleLock(file: string, now = Date.now()): boolean {
  try {
    const st = statSync(`${file}.lock`);
    if (now - st.mtimeMs < STALE_LOCK_MS) return false;
    rmSync(`${file}.lock`, { recursive: true, force: true });
    return true;
  } catch {
    return false;
  }
}

export function isBusy(err: unknown): boolean {
  return err instanceof Error && /database is locked|SQLITE_BUSY/i.test(err.message);
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Runs `fn`, and again while another process holds the lock (a query or a batch takes milliseconds), up to `ms`. */
export function retryBusy<T>(fn: () => T, ms = 5000): T {
  const deadline = Date.now() + ms;
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    try {
      return fn();
    } catch (err) {
      if (!isBusy(err) || Date.now() > deadline) throw err;
      Atomics.wait(sleeper, 0, 0, wait);
    }
  }
}

/** Bytes in use: the file's pages minus free ones (free pages are reused before the file grows). */
export function usedBytes(db: Db): number {
  const n = (sql: string): number => Number(Object.values(db.get(sql) ?? { v: 0 })[0] ?? 0);
  return (n('PRAGMA page_count') - n('PRAGMA freelist_count')) * n('PRAGMA page_size');
}

/** A statement cache: the worker runs the same few statements thousands of times. */
export class Statements {
  private readonly cache = new Map<string, ReturnType<Db['prepare']>>();
  constructor(readonly db: Db) {}

  get(sql: string): ReturnType<Db['prepare']> {
    let s = this.cache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.cache.set(sql, s);
    }
    return s;
  }

  /**
   * After a failed step (a locked file), SQLite reports that step's error again at the statement's next
   * reset, which node-sqlite3-wasm treats as fatal: failed statements are thrown away and made anew.
   */
  forget(): void {
    for (const s of this.cache.values()) {
      try {
        s.finalize();
      } catch {
        // finalize reports the last step's error too; the statement is gone either way.
      }
    }
    this.cache.clear();
  }

  close(): void {
    this.forget();
    this.db.close();
  }
}

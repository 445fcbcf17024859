/** Short, unique, roughly time-ordered queue ids, like Postfix's long queue ids. */

import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz'; // no vowels: ids never spell words
const EPOCH = Date.UTC(2024, 0, 1);

let lastMs = 0;
let seq = 0;
/** The 7 time characters of lastMs, made once per millisecond rather than once per id. */
let timePart = '';
let timePartMs = -1;
// Random bytes are drawn 4 KB at a time: one randomBytes call per id showed up in the ingest profile.
let pool = Buffer.alloc(0);
let poolAt = 0;

function random4(): Buffer {
  if (poolAt + 4 > pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  poolAt += 4;
  return pool.subarray(poolAt - 4, poolAt);
}

/**
 * A clock up to this far behind the last id's time is taken as the same moment (a clock stepped back, or
 * the milliseconds borrowed by a burst): the id continues from the last one instead of reusing a time.
 */
const SAME_MOMENT_MS = 1000;

/**
 * 12 characters: 7 of milliseconds since 2024, 1 of a per-millisecond sequence, 4 random.
 * The random part keeps two relay processes sharing nothing from colliding; time and sequence keep one
 * process from colliding with itself: past 52 ids in one millisecond the next millisecond is borrowed, so
 * ids of one process are unique and in order whatever the rate (a repeated id would let a rename into
 * queue/ replace an accepted message).
 */
export function newQueueId(now = Date.now()): string {
  if (now > lastMs || lastMs - now > SAME_MOMENT_MS) {
    lastMs = now;
    seq = 0;
  } else if (++seq === ALPHABET.length) {
    lastMs++;
    seq = 0;
  }
  if (timePartMs !== lastMs) {
    let t = lastMs - EPOCH;
    timePart = '';
    for (let i = 0; i < 7; i++) {
      timePart = ALPHABET[t % ALPHABET.length]! + timePart;
      t = Math.floor(t / ALPHABET.length);
    }
    timePartMs = lastMs;
  }
  let out = timePart + ALPHABET[seq]!;
  const r = random4();
  for (const b of r) out += ALPHABET[b % ALPHABET.length]!;
  return out;
}

export const QUEUE_ID_RE = /^[0-9A-Za-z]{12}$/;

/** The queue id in a spool message file's name (`<id>.msg`), or null for any other file. */
export function queueIdOfFile(name: string): string | null {
  if (!name.endsWith('.msg')) return null;
  const id = name.slice(0, -4);
  return QUEUE_ID_RE.test(id) ? id : null;
}

/** When a queue id was made, from its first 7 characters: what lets a scrape age dead letters without opening them. */
export function queueIdTime(id: string): number {
  let t = 0;
  for (const ch of id.slice(0, 7)) t = t * ALPHABET.length + ALPHABET.indexOf(ch);
  return EPOCH + t;
}

/** The smallest ('first') or largest ('last') queue id that time `ms` can give: queue ids sort as their times do. */
export function queueIdAt(ms: number, end: 'first' | 'last'): string {
  let t = Math.max(0, Math.floor(ms) - EPOCH);
  let out = '';
  for (let i = 0; i < 7; i++) {
    out = ALPHABET[t % ALPHABET.length]! + out;
    t = Math.floor(t / ALPHABET.length);
  }
  return out + (end === 'first' ? '0' : 'z').repeat(5);
}

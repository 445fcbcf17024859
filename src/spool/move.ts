/**
 * Handing a stopped relay's queue to another relay's spool (`queue move --to DIR`): a replica removed from a
 * fleet for good gives its messages to one that stays, with nothing lost and nothing sent twice.
 *
 * Per batch: each message is copied into the target's tmp/ (the message file as accepted, and its current
 * envelope as `<id>.moved.json`), fsynced; the ids go into the source's `moving.log`, fsynced; the target
 * adopts them (tmp/ → queue/, renames and an fsync of queue/: the running target relay does it itself, so
 * that its scheduler takes them; a stopped one's spool is changed directly); only then are they removed
 * from the source. A move cut short is run again: an id of `moving.log` already in the target is only
 * removed from the source; one not there (never adopted, or adopted and already delivered) is copied
 * again with a Sent Items look-up pending, so the target looks for it before it sends it again.
 * An attempt the source relay left unresolved (its in-flight journal) becomes such a look-up before the
 * move (recoverInflight), so that knowledge crosses over too.
 */

import { constants as fsc } from 'node:fs';
import { appendFile, copyFile, open, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Envelope } from './envelope.js';
import { writeSynced } from './fs-sync.js';
import type { Spool } from './spool.js';

export const MOVING_LOG = 'moving.log';
const MOVED_SUFFIX = '.moved.json';

export interface AdoptResult {
  /** Now in the target's queue/ (adopted now, or found there already from an earlier run). */
  adopted: string[];
  skipped: Record<string, string>;
}

/** The target side: staged messages in tmp/ go into queue/ (the state file first), then queue/ is fsynced. */
export async function adoptStaged(target: Spool, ids: readonly string[]): Promise<AdoptResult> {
  const adopted: string[] = [];
  const skipped: Record<string, string> = {};
  for (const id of ids) {
    const staged = path.join(target.tmpDir, `${id}.msg`);
    const stagedState = path.join(target.tmpDir, `${id}${MOVED_SUFFIX}`);
    if (await target.exists('queue', id)) {
      adopted.push(id);
      await rm(staged, { force: true });
      await rm(stagedState, { force: true });
      continue;
    }
    if (!(await exists(staged))) {
      skipped[id] = 'not staged in tmp/ (cleaned by a restart?): run the move again';
      continue;
    }
    if (await exists(stagedState)) await target.adoptStateFile(stagedState, id);
    await rename(staged, target.messagePath('queue', id));
    adopted.push(id);
  }
  if (adopted.length) await target.syncDir('queue');
  return { adopted, skipped };
}

export interface MoveReport {
  moved: number;
  /** Found in the target already (an earlier, interrupted run): removed from the source only. */
  alreadyThere: number;
  /** Moved with a Sent Items look-up pending: the earlier run was cut short before the source knew. */
  withLookup: number;
  skipped: Record<string, string>;
  /** Left in the source's dead/ (a move takes the queue only). */
  dead: number;
}

export interface MoveOptions {
  source: Spool;
  target: Spool;
  /** Adopts staged ids in the target: through the running target relay, or directly when it is stopped. */
  adopt: (ids: string[]) => Promise<AdoptResult>;
  now: () => number;
  batch?: number;
}

/** Moves every queued message of `source` (its relay stopped, its lock held by the caller) into `target`. */
export async function moveQueue(o: MoveOptions): Promise<MoveReport> {
  const { source, target } = o;
  const report: MoveReport = { moved: 0, alreadyThere: 0, withLookup: 0, skipped: {}, dead: (await source.ids('dead')).length };
  const log = path.join(source.directory, MOVING_LOG);
  const interrupted = new Set((await readFile(log, 'latin1').catch(() => '')).split('\n').filter((l) => l.startsWith('M ')).map((l) => l.slice(2)));
  const ids = await source.ids('queue');
  const batchSize = o.batch ?? 256;
  for (let i = 0; i < ids.length; i += batchSize) {
    const staged: string[] = [];
    for (const id of ids.slice(i, i + batchSize)) {
      const inTarget = (await target.exists('queue', id)) || (await target.exists('dead', id));
      if (inTarget && interrupted.has(id)) {
        // Adopted by an earlier run that stopped before removing it here.
        await source.remove('queue', id);
        report.alreadyThere++;
        continue;
      }
      if (inTarget) {
        report.skipped[id] = 'the target has a message with this queue id already; left here';
        continue;
      }
      const env = await source.readEnvelope('queue', id);
      if (interrupted.has(id) && !env.pendingLookup) {
        // Maybe adopted and delivered already by the target: it looks in Sent Items before sending again.
        env.pendingLookup = { since: new Date(o.now()).toISOString(), lookups: 0, reason: 'moved' };
        report.withLookup++;
      }
      await stage(source, target, env);
      staged.push(id);
    }
    if (!staged.length) continue;
    await syncFolder(target.tmpDir);
    await appendSynced(log, staged.map((id) => `M ${id}\n`).join(''));
    const res = await o.adopt(staged);
    Object.assign(report.skipped, res.skipped);
    for (const id of res.adopted) {
      await source.remove('queue', id);
      report.moved++;
    }
  }
  await unlink(log).catch(() => undefined);
  return report;
}

/** Copies the message file and its current envelope into the target's tmp/, both fsynced. */
async function stage(source: Spool, target: Spool, env: Envelope): Promise<void> {
  const msg = path.join(target.tmpDir, `${env.id}.msg`);
  await copyFile(source.messagePath('queue', env.id), msg);
  await syncFile(msg);
  const state = path.join(target.tmpDir, `${env.id}${MOVED_SUFFIX}`);
  await writeSynced(state, `${JSON.stringify(env, null, 1)}\n`);
}

async function syncFile(file: string): Promise<void> {
  const fh = await open(file, fsc.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const syncFolder = syncFile;

async function appendSynced(file: string, text: string): Promise<void> {
  await appendFile(file, text, { mode: 0o640 });
  await syncFile(file);
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

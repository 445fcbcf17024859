/** `smtp-graph-relay queue …`: the administrator's view of the spool, safe while the relay runs. */

import { createWriteStream, existsSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { exportMessage } from '../spool/export.js';
import path from 'node:path';
import type { RelayConfig } from '../config/config.js';
import { SpoolLock, controlDir, sendControl, type ControlRequest, type ControlResponse } from '../spool/control.js';
import { InflightJournal, recoverInflight } from '../spool/journal.js';
import { adoptStaged, moveQueue, type AdoptResult } from '../spool/move.js';
import { applyOffline, formatList, listQueue, showMessage } from '../spool/queue-tools.js';
import { Spool } from '../spool/spool.js';
import { UsageError } from '../errors.js';

export const QUEUE_USAGE = `queue commands:
  queue list [--dead | --all] [--json]     messages waiting (or failed): id, age, mailbox, size, tries, next try, last error
  queue show ID                            envelope and headers of one message
  queue retry ID... | --mailbox UPN | --all   try now (lifts a mailbox's throttle pause too)
  queue delete ID... [--dead]              remove messages from the queue (or the dead-letter folder)
  queue requeue ID... | --all              move messages from the dead-letter folder back into the queue
  queue export ID [--out FILE]             a queued or dead message as an .eml file (standard output without --out)
  queue move --to SPOOL_DIR                hand this (stopped) relay's queue to another relay's spool, running or not:
                                           no message lost, none sent twice (a replica removed from a fleet)
`;

export interface QueueFlags {
  dead?: boolean;
  all?: boolean;
  mailbox?: string;
  json?: boolean;
  out?: string;
  /** queue move: the other relay's spool folder. */
  to?: string;
}


/** Runs one queue command; returns what to print, and ok: false when a command that changes the queue changed nothing. */
export async function queueCommand(cfg: RelayConfig, args: string[], flags: QueueFlags): Promise<{ text: string; ok: boolean; stream?: Readable }> {
  const [sub, ...ids] = args;
  if (!sub) throw new UsageError('queue needs a command: list, show, retry, delete, requeue, export or move');
  if (!['list', 'show', 'retry', 'delete', 'requeue', 'export', 'move'].includes(sub)) throw new UsageError(`unknown queue command "${sub}"`);
  if (!existsSync(cfg.spool.directory)) {
    // Most often the configuration was not given: say which spool was looked for, and how to name another.
    throw new Error(`no spool at ${cfg.spool.directory} (spool.directory, or RELAY_SPOOL_DIR): give the relay's configuration with --config FILE or RELAY_CONFIG`);
  }
  const spool = new Spool(cfg.spool.directory);
  switch (sub) {
    case 'list': {
      const entries = await listQueue(spool, flags.all ? ['queue', 'dead'] : flags.dead ? ['dead'] : ['queue']);
      return { ok: true, text: flags.json ? `${JSON.stringify(entries.map((e) => ({ state: e.state, ...e.env })), null, 2)}\n` : formatList(entries) };
    }
    case 'export':
      if (ids.length !== 1) throw new UsageError('queue export takes one queue id');
      return exportEml(spool, ids[0]!, flags.out);
    case 'show':
      if (ids.length !== 1) throw new UsageError('queue show takes one queue id');
      return { ok: true, text: await showMessage(spool, ids[0]!) };
    case 'retry':
      if (!ids.length && !flags.all && !flags.mailbox) throw new UsageError('queue retry needs ids, --mailbox UPN or --all');
      return report(await request(cfg, spool, { op: 'retry', ids, mailbox: flags.mailbox, all: flags.all }));
    case 'delete':
      if (!ids.length) throw new UsageError('queue delete needs queue ids');
      return report(await request(cfg, spool, { op: 'delete', ids, dead: flags.dead }));
    case 'requeue':
      if (!ids.length && !flags.all) throw new UsageError('queue requeue needs ids or --all');
      return report(await request(cfg, spool, { op: 'requeue', ids, all: flags.all }));
    case 'move':
      if (!flags.to) throw new UsageError('queue move needs --to SPOOL_DIR (the spool folder of the relay that takes the messages)');
      if (ids.length) throw new UsageError('queue move moves the whole queue: it takes no ids');
      return move(cfg, spool, path.resolve(flags.to));
    default:
      throw new UsageError(`unknown queue command "${sub}"`);
  }
}

/** The .eml to a new file (never over an existing one), or as a stream for standard output. */
async function exportEml(spool: Spool, id: string, out: string | undefined): Promise<{ text: string; ok: boolean; stream?: Readable }> {
  const m = await exportMessage(spool, id);
  if (!m) return { ok: false, text: `no message ${id} in the queue or the dead-letter folder: only those are kept\n` };
  if (!out) return { ok: true, text: '', stream: m.open() };
  await pipeline(m.open(), createWriteStream(out, { flags: 'wx', mode: 0o600 }));
  return { ok: true, text: `${id} (${m.state === 'dead' ? 'dead letter' : 'queued'}, ${m.size} bytes) written to ${out}\n` };
}

/** A running relay is asked (it owns the messages it is delivering); otherwise the files are changed directly. */
async function request(cfg: RelayConfig, spool: Spool, req: ControlRequest): Promise<ControlResponse> {
  const pid = await new SpoolLock(path.join(cfg.spool.directory, 'relay.lock')).holder();
  if (pid !== null) return sendControl(controlDir(cfg.spool.directory), req);
  await spool.openDirs();
  try {
    return await applyOffline(spool, req);
  } finally {
    await spool.close();
  }
}

/**
 * The source relay must be stopped (its lock is taken for the move, so it cannot start meanwhile); the
 * target may run: it adopts the messages itself, through its control channel, and schedules them.
 */
async function move(cfg: RelayConfig, source: Spool, targetDir: string): Promise<{ text: string; ok: boolean }> {
  const sourceDir = await realpath(cfg.spool.directory);
  if (!existsSync(path.join(targetDir, 'queue')) || !existsSync(path.join(targetDir, 'tmp'))) throw new Error(`${targetDir} is not a relay's spool (no queue/ and tmp/ folders in it)`);
  if ((await realpath(targetDir)) === sourceDir) throw new Error('the target spool is this relay\'s own');
  const sourceLock = new SpoolLock(path.join(sourceDir, 'relay.lock'));
  const running = await sourceLock.holder();
  if (running !== null && (await answers(sourceDir))) throw new Error(`the relay of ${sourceDir} is running (pid ${running}): stop it first; a move takes a stopped relay's queue`);
  if (running !== null) throw new Error(`${sourceDir}/relay.lock names pid ${running}, alive here, but no relay answers on its control channel: if that lock is another host's or container's (a relay stopped there), remove it and run the move again`);
  await sourceLock.acquire();
  const target = new Spool(targetDir);
  const targetLock = new SpoolLock(path.join(targetDir, 'relay.lock'));
  // A relay in another container (Kubernetes: another pod on the same volume) has a pid this one cannot see: it is asked instead.
  const targetPid = (await targetLock.holder()) ?? (existsSync(targetLock.file) && (await answers(targetDir)) ? 0 : null);
  if (targetPid === null) await targetLock.acquire();
  await source.openDirs();
  if (targetPid === null) await target.openDirs();
  try {
    // What the source relay left in flight becomes a pending Sent Items look-up, and crosses over with the message.
    const journal = new InflightJournal(sourceDir);
    const unresolved = await recoverInflight(source, journal, Date.now());
    await journal.close();
    const adopt = targetPid !== null ? viaRelay(targetDir) : (ids: string[]) => adoptStaged(target, ids);
    const r = await moveQueue({ source, target, adopt, now: Date.now });
    const lines = [
      `${r.moved} message(s) moved to ${targetDir}${targetPid === null ? ' (its relay takes them when it starts)' : targetPid ? ` (its relay, pid ${targetPid}, took them)` : ' (its relay took them)'}`,
      ...(unresolved.length ? [`${unresolved.length} of them had an attempt in flight when this relay stopped: the target looks for them in Sent Items before sending them again`] : []),
      ...(r.alreadyThere ? [`${r.alreadyThere} found in the target already (an earlier move was cut short): removed here`] : []),
      ...(r.withLookup ? [`${r.withLookup} moved with a Sent Items look-up first (an earlier move was cut short)`] : []),
      ...(r.dead ? [`${r.dead} message(s) stay in this spool's dead/ (queue requeue --all first to move them too)`] : []),
      ...Object.entries(r.skipped).map(([id, why]) => `  ${id}: ${why}`),
    ];
    return { text: `${lines.join('\n')}\n`, ok: Object.keys(r.skipped).length === 0 };
  } finally {
    await source.close();
    if (targetPid === null) {
      await target.close();
      await targetLock.release();
    }
    await sourceLock.release();
  }
}

/** Whether a relay answers on the spool's control channel (it looks at least every 2 s). */
async function answers(spoolDir: string): Promise<boolean> {
  return sendControl(controlDir(spoolDir), { op: 'adopt', ids: [] }, 6_000).then(
    (r) => r.ok,
    () => false,
  );
}

function viaRelay(targetDir: string): (ids: string[]) => Promise<AdoptResult> {
  return async (ids) => {
    const res = await sendControl(controlDir(targetDir), { op: 'adopt', ids }, 120_000);
    if (!res.ok) throw new Error(`the target relay could not take the messages: ${res.message}`);
    return { adopted: res.ids ?? [], skipped: res.skipped ?? {} };
  };
}

function report(res: ControlResponse): { text: string; ok: boolean } {
  const lines = [res.message];
  for (const [id, why] of Object.entries(res.skipped ?? {})) lines.push(`  ${id}: ${why}`);
  return { text: `${lines.join('\n')}\n`, ok: res.ok && res.count > 0 };
}

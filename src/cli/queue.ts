/** `smtp-graph-relay queue …`: the administrator's view of the spool, safe while the relay runs. */

import { createWriteStream, existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { exportMessage } from '../spool/export.js';
import path from 'node:path';
import type { RelayConfig } from '../config/config.js';
import { SpoolLock, controlDir, sendControl, type ControlRequest, type ControlResponse } from '../spool/control.js';
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
`;

export interface QueueFlags {
  dead?: boolean;
  all?: boolean;
  mailbox?: string;
  json?: boolean;
  out?: string;
}


/** Runs one queue command; returns what to print, and ok: false when a command that changes the queue changed nothing. */
export async function queueCommand(cfg: RelayConfig, args: string[], flags: QueueFlags): Promise<{ text: string; ok: boolean; stream?: Readable }> {
  const [sub, ...ids] = args;
  if (!sub) throw new UsageError('queue needs a command: list, show, retry, delete, requeue or export');
  if (!['list', 'show', 'retry', 'delete', 'requeue', 'export'].includes(sub)) throw new UsageError(`unknown queue command "${sub}"`);
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

function report(res: ControlResponse): { text: string; ok: boolean } {
  const lines = [res.message];
  for (const [id, why] of Object.entries(res.skipped ?? {})) lines.push(`  ${id}: ${why}`);
  return { text: `${lines.join('\n')}\n`, ok: res.ok && res.count > 0 };
}

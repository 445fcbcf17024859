/** Queue tools' requests (spool/control/), handled by the running relay so that the scheduler's view stays true. */

import type { History } from '../history/history.js';
import type { Logger } from '../observability/logger.js';
import type { RelayMetrics } from '../observability/metrics.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import type { ControlRequest, ControlResponse } from '../spool/control.js';
import { adoptStaged } from '../spool/move.js';
import { matches, requeued } from '../spool/queue-tools.js';
import type { Spool } from '../spool/spool.js';
import { accountOf } from '../spool/envelope.js';
import type { ActiveSet } from './active-set.js';

export interface ControlDeps {
  spool: Spool;
  scheduler: Scheduler;
  active: ActiveSet;
  metrics: RelayMetrics;
  log: Logger;
  now: () => number;
  /** Each action joins the message's story, with who asked. */
  history?: History | null;
  /** Who asked: "queue tool" (the command line), or the status page's user. */
  by?: string;
}

function by(d: ControlDeps): string {
  return d.by ?? 'queue tool';
}

export async function handleControl(d: ControlDeps, req: ControlRequest): Promise<ControlResponse> {
  switch (req.op) {
    case 'retry': {
      const hits: string[] = [];
      const count = d.scheduler.retryNow((m) => matches(m, req) && hits.push(m.id) > 0);
      for (const id of hits) d.history?.action(id, 'retry', by(d));
      d.log.info({ event: 'queue-retry', count, request: req, by: by(d) }, `queue tool: ${count} message(s) due now`);
      return { ok: true, count, message: `${count} message(s) due now` };
    }
    case 'delete':
      return remove(d, req.ids, req.dead === true);
    case 'requeue':
      return requeue(d, req.all ? await d.spool.ids('dead') : (req.ids ?? []));
    case 'adopt':
      return adopt(d, req.ids);
  }
}

/** A queue move from another relay's spool staged these in tmp/: into the queue, and scheduled now. */
async function adopt(d: ControlDeps, ids: readonly string[]): Promise<ControlResponse> {
  const r = await adoptStaged(d.spool, ids);
  for (const id of r.adopted) {
    if (d.scheduler.has(id)) continue;
    const env = await d.spool.readEnvelope('queue', id);
    d.metrics.queued(env);
    d.scheduler.add(env.id, env.mailbox, d.now(), accountOf(env));
    d.log.info({ event: 'queue-adopt', qid: id, account: accountOf(env), mailbox: env.mailbox }, "message taken over from another relay's spool (queue move)");
  }
  return { ok: true, count: r.adopted.length, message: `${r.adopted.length} message(s) taken over`, skipped: r.skipped, ids: r.adopted };
}

async function remove(d: ControlDeps, ids: readonly string[], dead: boolean): Promise<ControlResponse> {
  const skipped: Record<string, string> = {};
  let count = 0;
  const state = dead ? 'dead' : 'queue';
  for (const id of ids) {
    // A message of the active set leaves the scheduler first; one on disk is only a file (the scan skips it).
    const active = !dead && d.scheduler.has(id);
    if (active && !d.scheduler.remove(id)) {
      skipped[id] = 'being delivered right now; try again in a moment';
      continue;
    }
    if (!(await d.spool.exists(state, id))) {
      skipped[id] = `not in ${state}`;
      continue;
    }
    await d.spool.remove(state, id);
    if (active) d.metrics.queue.remove(id);
    else if (!dead) d.active.deletedOnDisk(id);
    d.history?.action(id, 'deleted', by(d));
    d.log.warn({ event: 'queue-delete', qid: id, state, by: by(d) }, 'message deleted by a queue tool');
    count++;
  }
  return { ok: true, count, message: `${count} message(s) deleted`, skipped };
}

async function requeue(d: ControlDeps, ids: readonly string[]): Promise<ControlResponse> {
  const skipped: Record<string, string> = {};
  let count = 0;
  for (const id of ids) {
    if (!(await d.spool.exists('dead', id))) {
      skipped[id] = 'not in the dead-letter folder';
      continue;
    }
    const env = requeued(await d.spool.readEnvelope('dead', id));
    await d.spool.move('dead', 'queue', env);
    if (d.active.offer(env, d.now())) d.metrics.queued(env);
    else d.metrics.queue.addOnDisk(1, Date.parse(env.receivedAt));
    d.history?.action(id, 'requeued', by(d));
    d.log.info({ event: 'queue-requeue', qid: id, account: accountOf(env), mailbox: env.mailbox, by: by(d) }, 'message requeued from the dead-letter folder');
    count++;
  }
  return { ok: true, count, message: `${count} message(s) back in the queue`, skipped };
}

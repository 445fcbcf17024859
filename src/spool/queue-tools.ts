/** Queue inspection and repair, like postqueue/postsuper: reads the spool; changes go through the relay when it runs. */

import { readHeaderSection } from './header-section.js';
import type { ControlRequest, ControlResponse } from './control.js';
import { adoptStaged } from './move.js';
import type { Spool } from './spool.js';
import type { Envelope, SpoolState } from './envelope.js';

export interface QueueEntry {
  state: SpoolState;
  env: Envelope;
}

export async function listQueue(spool: Spool, states: SpoolState[]): Promise<QueueEntry[]> {
  const out: QueueEntry[] = [];
  for (const state of states) {
    for (const id of await spool.ids(state)) {
      // A message may leave between readdir and read (delivered meanwhile): that is not an error.
      const env = await spool.readEnvelope(state, id).catch(() => null);
      if (env) out.push({ state, env });
    }
  }
  return out;
}

function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

/** A table an administrator reads in a terminal, one line a message. */
export function formatList(entries: QueueEntry[], now = Date.now()): string {
  const rows = [['ID', 'STATE', 'AGE', 'MAILBOX', 'SIZE', 'TRIES', 'NEXT', 'LAST ERROR']];
  for (const { state, env } of entries) {
    const due = Date.parse(env.nextAttemptAt) - now;
    const next = state === 'queue' ? (due <= 0 ? 'now' : `in ${span(due)}`) : '-';
    const err = env.lastError ? `${env.lastError.status ?? ''} ${env.lastError.code ?? env.lastError.reason}`.trim() : '';
    rows.push([env.id, state, span(now - Date.parse(env.receivedAt)), env.mailbox, String(env.size), String(env.attempts), next, err]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
  lines.push(`-- ${entries.filter((e) => e.state === 'queue').length} queued, ${entries.filter((e) => e.state === 'dead').length} dead`);
  return `${lines.join('\n')}\n`;
}

export async function showMessage(spool: Spool, id: string): Promise<string> {
  for (const state of ['queue', 'dead'] as const) {
    if (!(await spool.exists(state, id))) continue;
    const env = await spool.readEnvelope(state, id);
    const headers = await readHeaderSection(spool, state, env);
    return `state: ${state}\n${JSON.stringify(env, null, 2)}\n\n${headers.toString('utf8')}`;
  }
  throw new Error(`no message ${id} in the queue or the dead-letter folder`);
}

/**
 * Applies a request to the spool files directly, for when no relay runs (a running relay is asked
 * through spool/control/ instead, so that it never loses track of a message it is delivering).
 */
export async function applyOffline(spool: Spool, req: ControlRequest): Promise<ControlResponse> {
  const now = new Date().toISOString();
  let count = 0;
  const skipped: Record<string, string> = {};
  switch (req.op) {
    case 'retry': {
      for (const { env } of await listQueue(spool, ['queue'])) {
        if (!matches(env, req)) continue;
        env.nextAttemptAt = now;
        await spool.updateEnvelope('queue', env);
        count++;
      }
      return { ok: true, count, message: `${count} message(s) due now; the relay tries them when it starts` };
    }
    case 'delete': {
      const state = req.dead ? 'dead' : 'queue';
      for (const id of req.ids) {
        if (await spool.exists(state, id)) {
          await spool.remove(state, id);
          count++;
        } else skipped[id] = `not in ${state}`;
      }
      return { ok: true, count, message: `${count} message(s) deleted`, skipped };
    }
    case 'requeue': {
      for (const id of req.all ? await spool.ids('dead') : (req.ids ?? [])) {
        if (!(await spool.exists('dead', id))) {
          skipped[id] = 'not in the dead-letter folder';
          continue;
        }
        await spool.move('dead', 'queue', requeued(await spool.readEnvelope('dead', id)));
        count++;
      }
      return { ok: true, count, message: `${count} message(s) back in the queue`, skipped };
    }
    case 'adopt': {
      const r = await adoptStaged(spool, req.ids);
      return { ok: true, count: r.adopted.length, message: `${r.adopted.length} message(s) adopted; the relay tries them when it starts`, skipped: r.skipped, ids: r.adopted };
    }
  }
}

/** A requeued message starts a new life: due now, and the queue lifetime counted from now. */
export function requeued(env: Envelope): Envelope {
  const now = new Date().toISOString();
  return { ...env, receivedAt: now, nextAttemptAt: now, attempts: 0 };
}

export function matches(env: Pick<Envelope, 'id' | 'mailbox'>, req: { ids?: string[]; mailbox?: string; all?: boolean }): boolean {
  if (req.all) return true;
  if (req.ids?.includes(env.id)) return true;
  return req.mailbox !== undefined && env.mailbox.toLowerCase() === req.mailbox.toLowerCase();
}

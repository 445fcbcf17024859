/** `smtp-graph-relay history …`: the delivery history from the command line, read from the same file with the same query as the status page. */

import { existsSync } from 'node:fs';
import type { RelayConfig } from '../config/config.js';
import { UsageError } from '../errors.js';
import { parseQuery, QueryError, type QueryFields } from '../history/query.js';
import { HistoryStore } from '../history/store.js';
import type { MessageStory, MessageSummary } from '../history/types.js';

export const HISTORY_USAGE = `history commands (the status page's search, from the history file; safe while the relay runs):
  history search [--qid ID] [--message-id ID] [--sender ADDR] [--recipient ADDR] [--client IP] [--user NAME]
                 [--state queued|delivered|dead|bounced|deleted] [--since T] [--until T] [--limit N] [--json]
                 T: 2026-01-10, 2026-01-10T09:30Z, or how long ago (30m, 2h, 7d)
  history show ID [--json]                 one message's story: accepted, each attempt, its end
`;

export interface HistoryFlags {
  qid?: string;
  'message-id'?: string;
  sender?: string;
  recipient?: string;
  client?: string;
  user?: string;
  state?: string;
  since?: string;
  until?: string;
  limit?: string;
  json?: boolean;
}

const when = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export function formatResults(rows: MessageSummary[]): string {
  const table = [['RECEIVED', 'ID', 'STATE', 'TRIES', 'FROM', 'TO', 'DEVICE', 'LAST ERROR']];
  for (const r of rows) table.push([when(r.at), r.qid, r.state, String(r.attempts), r.sender || '<>', r.rcpts.join(','), r.user ?? r.client, r.lastError ?? '']);
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  const lines = table.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
  lines.push(`-- ${rows.length} message(s)`);
  return `${lines.join('\n')}\n`;
}

export function formatStory(s: MessageStory): string {
  const lines = [
    `${s.qid}  ${s.state}`,
    `received    ${when(s.at)} from ${s.client}${s.user ? ` as ${s.user}` : ''} on listener ${s.listener}${s.tls ? ` (${s.tls})` : ' (no TLS)'}, HELO ${s.helo}`,
    `envelope    from <${s.sender}> to ${s.rcpts.map((r) => `<${r}>`).join(', ')}`,
    `mailbox     ${s.mailbox}`,
    `message-id  ${s.messageId ?? '-'}`,
    ...(s.subject ? [`subject     ${s.subject}`] : []),
    `size        ${s.size} bytes`,
    '',
    `${when(s.at)}  accepted`,
  ];
  for (const e of s.events) {
    const bits = [e.kind, e.attempt ? `attempt ${e.attempt}` : '', e.status ? `HTTP ${e.status}` : '', e.code ?? '', e.reason && e.reason !== e.code ? e.reason : '', e.requestId ? `request-id ${e.requestId}` : '', e.by ? `by ${e.by}` : '', e.dsn ? `notice ${e.dsn}` : ''];
    lines.push(`${when(e.at)}  ${bits.filter(Boolean).join('  ')}`);
    if (e.detail) lines.push(`                      ${e.detail}`);
  }
  return `${lines.join('\n')}\n`;
}

export async function historyCommand(cfg: RelayConfig, args: string[], flags: HistoryFlags): Promise<{ text: string; ok: boolean }> {
  const [sub, ...rest] = args;
  if (sub !== 'search' && sub !== 'show') throw new UsageError(sub ? `unknown history command "${sub}"` : 'history needs a command: search or show');
  if (!cfg.history.enabled) throw new Error('the delivery history is off (history.enabled: false)');
  if (!existsSync(cfg.history.file)) throw new Error(`no history at ${cfg.history.file} (history.file): has the relay run with this configuration? Give it with --config FILE or RELAY_CONFIG`);
  const store = new HistoryStore(cfg.history.file, { readOnly: true });
  try {
    if (sub === 'show') {
      if (rest.length !== 1) throw new UsageError('history show takes one queue id');
      const s = store.story(rest[0]!);
      if (!s) return { ok: false, text: `no message ${rest[0]} in the history\n` };
      return { ok: true, text: flags.json ? `${JSON.stringify(s, null, 2)}\n` : formatStory(s) };
    }
    if (rest.length) throw new UsageError(`history search takes options, not arguments (got "${rest.join(' ')}")`);
    let q;
    try {
      const fields: QueryFields = { qid: flags.qid, messageId: flags['message-id'], sender: flags.sender, recipient: flags.recipient, client: flags.client, user: flags.user, state: flags.state, since: flags.since, until: flags.until, limit: flags.limit };
      q = parseQuery(fields);
    } catch (err) {
      if (err instanceof QueryError) throw new UsageError(err.message);
      throw err;
    }
    const rows = store.search(q);
    return { ok: rows.length > 0, text: flags.json ? `${JSON.stringify(rows, null, 2)}\n` : formatResults(rows) };
  } finally {
    store.close();
  }
}

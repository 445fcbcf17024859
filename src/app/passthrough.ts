/** Passthrough listeners: no spool; Graph's verdict on the message becomes the answer to DATA (202 → 250, transient → 451, permanent → 554). */

import type { Sender } from '../delivery/senders.js';
import { enhancedStatus } from '../graph/classify.js';
import type { MessageData } from '../mime/message-file.js';
import type { Logger } from '../observability/logger.js';
import type { PassthroughAnswer } from '../smtp/session.js';
import { accountOf, type Envelope } from '../spool/envelope.js';

export async function passThrough(sender: Sender, log: Logger, env: Envelope, data: MessageData): Promise<PassthroughAnswer> {
  const r = await sender.send(env, data);
  const v = r.verdict;
  const detail = [r.status && `HTTP ${r.status}`, r.code].filter(Boolean).join(' ') || (v.kind === 'delivered' ? '' : v.reason);
  const fields = { qid: env.id, event: 'passthrough', account: accountOf(env), mailbox: env.mailbox, rcpts: env.rcptTo.length, size: env.size, status: r.status, code: r.code, requestId: r.requestId, listener: env.listener };
  if (v.kind === 'delivered') {
    log.info({ ...fields, result: 'delivered' }, 'message passed through to Graph');
    return { accepted: true, text: `2.0.0 Ok: sent through Graph as ${env.id}${r.requestId ? ` (request-id ${r.requestId})` : ''}` };
  }
  log.warn({ ...fields, result: v.kind, reason: v.reason, error: r.message }, 'Graph did not take a passthrough message');
  if (v.kind === 'transient') return { accepted: false, code: 451, text: `${enhancedStatus(v.reason, 'transient')} Graph did not take the message (${detail}); try again later` };
  return { accepted: false, code: 554, text: `${enhancedStatus(v.reason, 'permanent')} Graph refused the message (${detail})` };
}

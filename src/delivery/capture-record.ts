/** What capture mode writes to <id>.json: the route graph mode would take for a message, as an admin reads it. */

import { HeaderCollector, readHeaderFacts } from '../mime/headers.js';
import { readRange } from '../mime/message-file.js';
import type { Envelope } from '../spool/envelope.js';
import type { PlannedRequest } from '../graph/planned-requests.js';
import type { PlannedRoute, RouteInput, RouteWork } from '../graph/route-plan.js';

export interface Recipients {
  to: string[];
  cc: string[];
  bcc: string[];
}

/** The body of the first request when it is JSON (JSON sendMail, or a JSON draft): written beside the record. */
export function jsonRequestBody(work: RouteWork): Buffer | null {
  if (work.route === 'json') return work.body;
  if (work.route === 'large' && work.large.draft.kind === 'json') return work.large.draft.body;
  return null;
}

/** The record: queue id, mailbox, the plan, the first request in full, who Graph delivers to, and where the message came from. */
export async function captureRecord(env: Envelope, input: RouteInput, planned: PlannedRoute, graphUrl: string): Promise<Record<string, unknown>> {
  const { plan, work } = planned;
  return {
    queueId: env.id,
    mailbox: env.mailbox,
    route: plan.route,
    permission: plan.permission,
    reason: plan.reason,
    ...(plan.refused ? { refused: plan.refused } : {}),
    ...(plan.sentItemsKept ? { sentItemsKept: plan.sentItemsKept } : {}),
    request: firstRequest(env.id, input, planned, graphUrl),
    requests: plan.requests,
    ...(plan.draft ? { draft: plan.draft, attachments: plan.attachments } : {}),
    recipients: await recipients(input, work),
    envelope: { mailFrom: env.mailFrom, rcptTo: env.rcptTo },
    bccAdded: env.bcc,
    client: { address: env.clientAddress, helo: env.helo, listener: env.listener },
    receivedAt: env.receivedAt,
    capturedAt: new Date().toISOString(),
  };
}

/** The first request as an HTTP request (the only one on the MIME and JSON routes); null when nothing is sent. */
function firstRequest(id: string, input: RouteInput, { plan, work }: PlannedRoute, graphUrl: string): Record<string, unknown> | null {
  const first: PlannedRequest | undefined = plan.requests[0];
  if (!first) return null;
  const eml = `${id}.eml`;
  let body: string;
  if (jsonRequestBody(work)) body = `${id}.request.json (${first.bodyBytes} bytes)`;
  else if (work.route === 'large') body = `base64 of ${eml} less ${work.large.attachments.length} attachment part(s) (${first.bodyBytes} bytes as base64)`;
  else body = `base64 of ${eml} (${input.prefix.length + input.data.size} bytes)`;
  return {
    method: first.method,
    url: `${graphUrl}${first.path}`,
    headers: { 'Content-Type': first.contentType, 'Content-Length': first.bodyBytes },
    body,
    ...(plan.requests.length > 1 ? { then: `${plan.requests.length - 1} more request(s): see requests` } : {}),
  };
}

/** To/Cc/Bcc of what Graph reads: the JSON message's recipient lists, or the headers of prefix + MIME. */
async function recipients(input: RouteInput, work: RouteWork): Promise<Recipients> {
  const json = jsonRequestBody(work);
  if (json) {
    const body = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
    const message = (work.route === 'json' ? body['message'] : body) as Record<string, unknown>;
    return { to: jsonAddresses(message['toRecipients']), cc: jsonAddresses(message['ccRecipients']), bcc: jsonAddresses(message['bccRecipients']) };
  }
  // The spooled header section was checked whole at ingest (limits.maxHeaderSize), so this bound is not reached.
  const header = new HeaderCollector(4 * 1024 * 1024);
  for await (const chunk of readRange(input.data.file, 0, input.data.size)) if (header.push(chunk)) break;
  const facts = readHeaderFacts(Buffer.concat([input.prefix, header.block ?? header.finish()]));
  return { to: facts.to, cc: facts.cc, bcc: facts.bcc };
}

function jsonAddresses(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.map((r) => (r as { emailAddress?: { address?: string } }).emailAddress?.address).filter((a): a is string => typeof a === 'string');
}

/**
 * Graph's message trace (GET /v1.0/admin/exchange/tracing/messageTraces, ExchangeMessageTrace.Read.All): one
 * exchangeMessageTrace per recipient of each message the emulator took, found by Message-ID and receivedDateTime.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { checkBearer } from './graph.js';
import { sendJson } from './http.js';
import { verifyHs256 } from './jwt.js';
import type { EmulatorState } from './state.js';

export const TRACE_PATH = '/v1.0/admin/exchange/tracing/messageTraces';
export const TRACE_ROLE = 'ExchangeMessageTrace.Read.All';

function messageIdOf(mime: Buffer | undefined): string | null {
  if (!mime) return null;
  const head = mime.subarray(0, Math.max(0, mime.indexOf('\r\n\r\n'))).toString('latin1');
  const m = /^message-id:[ \t]*(.+(?:\r\n[ \t].*)*)$/im.exec(head);
  return m ? m[1]!.replace(/\r\n[ \t]+/g, ' ').trim() : null;
}

/** `messageId eq '<…>' and receivedDateTime ge 2026-…Z and receivedDateTime le 2026-…Z`, as Graph's $filter reads it. */
function parseFilter(filter: string): { messageId?: string; ge?: number; le?: number } | null {
  const out: { messageId?: string; ge?: number; le?: number } = {};
  for (const clause of filter.split(/\s+and\s+/i)) {
    const m = /^\s*(messageId|receivedDateTime)\s+(eq|ge|le)\s+(.+?)\s*$/i.exec(clause);
    if (!m) return null;
    if (m[1]!.toLowerCase() === 'messageid' && m[2] === 'eq') out.messageId = m[3]!.replace(/^'|'$/g, '').replace(/''/g, "'");
    else if (m[1]!.toLowerCase() === 'receiveddatetime') out[m[2] === 'ge' ? 'ge' : 'le'] = Date.parse(m[3]!.replace(/^'|'$/g, ''));
    else return null;
  }
  return out;
}

export async function handleMessageTrace(state: EmulatorState, req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  if (url.pathname !== TRACE_PATH) return false;
  state.traceRequests++;
  const requestId = randomUUID();
  const error = (status: number, code: string, message: string): void => sendJson(res, status, { error: { code, message, innerError: { 'request-id': requestId, date: new Date().toISOString() } } }, { 'request-id': requestId });
  if (req.method !== 'GET') return void error(405, 'MethodNotAllowed', `${req.method} is not supported on this resource.`), true;
  const auth = checkBearer(state, req.headers.authorization);
  if (!auth.ok) return void error(401, 'InvalidAuthenticationToken', auth.message), true;
  const claims = verifyHs256(/^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')![1]!, state.tokenSecret)!;
  const roles = Array.isArray(claims['roles']) ? (claims['roles'] as string[]) : [];
  if (!roles.includes(TRACE_ROLE)) return void error(403, 'Forbidden', 'Missing role permissions on the request. API requires one of \'ExchangeMessageTrace.Read.All\'.'), true;
  const f = parseFilter(url.searchParams.get('$filter') ?? '');
  if (!f) return void error(400, 'BadRequest', 'Invalid filter clause.'), true;
  const value = state.sent
    .filter((s) => (f.messageId === undefined || messageIdOf(s.mime) === f.messageId) && (f.ge === undefined || s.at.getTime() >= f.ge) && (f.le === undefined || s.at.getTime() <= f.le))
    .flatMap((s) =>
      s.recipients.map((r) => ({
        id: randomUUID(),
        messageId: messageIdOf(s.mime),
        receivedDateTime: s.at.toISOString(),
        recipientAddress: r,
        senderAddress: s.upn,
        status: state.traceStatus.get(r.toLowerCase()) ?? 'delivered',
        subject: null,
        size: s.size,
        fromIP: '203.0.113.7',
        toIP: null,
      })),
    );
  sendJson(res, 200, { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#admin/exchange/tracing/messageTraces', value }, { 'request-id': requestId });
  return true;
}

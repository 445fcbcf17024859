/** Graph request pipeline: routing, outage/auth/script/throttle/size checks, latency, then the operation handler. */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphError } from './call.js';
import type { GraphCall, Reply } from './call.js';
import { addAttachment, cancelUpload, createDraft, createUploadSession, deleteDraft, MAX_UPLOAD_CHUNK, sendDraft, uploadChunk } from './drafts.js';
import { graphErrorBody, readBody, resetConnection, retryAfterHeader, sendEmpty, sendJson, sleep } from './http.js';
import { verifyHs256 } from './jwt.js';
import { sendMail } from './mail.js';
import { listSentItems } from './sent-items.js';
import { mailboxKey } from './state.js';
import type { EmulatorState, UploadSession } from './state.js';
import type { GraphOp, RequestLogEntry, ScriptStep } from './types.js';

interface Route {
  op: GraphOp;
  upn?: string;
  draftId?: string;
  sessionId?: string;
  draftIdInUploadUrl?: string;
}

type RouteResult = Route | { status: number; code: string; message: string };

const HANDLERS: Record<GraphOp, (call: GraphCall) => Reply> = {
  sendMail,
  createDraft,
  addAttachment,
  createUploadSession,
  uploadChunk,
  cancelUpload,
  sendDraft,
  deleteDraft,
  listSentItems,
};

const SCRIPTED_DEFAULTS: Record<number, [string, string]> = {
  400: ['BadRequest', 'The request is invalid (scripted).'],
  401: ['InvalidAuthenticationToken', 'Access token has expired or is not yet valid.'],
  403: ['ErrorAccessDenied', 'Access is denied. Check credentials and try again.'],
  404: ['ErrorItemNotFound', 'The specified object was not found in the store.'],
  413: ['RequestEntityTooLarge', 'The request is too large.'],
  429: ['ApplicationThrottled', 'Application is over its MailboxConcurrency limit.'],
  500: ['InternalServerError', 'An internal server error occurred (scripted).'],
  502: ['BadGateway', 'Bad gateway (scripted).'],
  503: ['ServiceUnavailable', 'The service is temporarily unavailable (scripted).'],
  504: ['GatewayTimeout', 'The gateway timed out (scripted).'],
};

const UPLOAD_PATH = /^\/_upload\/api\/v2\.0\/Users\('.*'\)\/Messages\('([^'/]+)'\)\/AttachmentSessions\('([^'/]+)'\)$/;

function route(method: string, pathname: string): RouteResult {
  let segments: string[];
  try {
    segments = pathname.split('/').slice(1).map((s) => decodeURIComponent(s));
  } catch {
    return { status: 400, code: 'BadRequest', message: 'Malformed percent-encoding in the request path.' };
  }
  if (segments[0] === '_upload') {
    // Re-escape decoded slashes so that they cannot fake path structure.
    const match = UPLOAD_PATH.exec(`/${segments.map((s) => s.replace(/\//g, '%2F')).join('/')}`);
    if (!match?.[1] || !match[2]) return { status: 404, code: 'ErrorItemNotFound', message: 'Unknown upload URL.' };
    if (method === 'PUT') return { op: 'uploadChunk', draftIdInUploadUrl: match[1], sessionId: match[2] };
    if (method === 'DELETE') return { op: 'cancelUpload', draftIdInUploadUrl: match[1], sessionId: match[2] };
    return { status: 405, code: 'MethodNotAllowed', message: `${method} is not allowed on an upload URL.` };
  }
  const [version, users, upn, ...rest] = segments;
  const lower = rest.map((s) => s.toLowerCase().replace(/^microsoft\.graph\./, ''));
  if (version !== 'v1.0' || users?.toLowerCase() !== 'users' || !upn) {
    return { status: 400, code: 'BadRequest', message: `Resource not found for the segment '${segments.slice(0, 3).join('/')}'.` };
  }
  const shape = lower.map((s, i) => (i === 1 && lower[0] === 'messages' ? '{id}' : s)).join('/');
  const draftId = rest[1];
  const ops: Record<string, Partial<Record<string, GraphOp>>> = {
    sendmail: { POST: 'sendMail' },
    messages: { POST: 'createDraft' },
    'messages/{id}': { DELETE: 'deleteDraft' },
    'messages/{id}/attachments': { POST: 'addAttachment' },
    'messages/{id}/attachments/createuploadsession': { POST: 'createUploadSession' },
    'messages/{id}/send': { POST: 'sendDraft' },
    'mailfolders/sentitems/messages': { GET: 'listSentItems' },
  };
  const byMethod = ops[shape];
  if (!byMethod) return { status: 400, code: 'BadRequest', message: `Resource not found for the segment '${rest.join('/')}'.` };
  const op = byMethod[method];
  if (!op) return { status: 405, code: 'MethodNotAllowed', message: `${method} is not supported on this resource.` };
  return shape === 'sendmail' || shape === 'messages' || op === 'listSentItems' ? { op, upn } : { op, upn, ...(draftId === undefined ? {} : { draftId }) };
}

type Auth = { ok: true; tenantId: string; roles: string[] | null } | { ok: false; message: string };

/** What an app-only token must carry for an operation, when it carries roles at all (RBAC for Applications: none, and Exchange decides). */
const ROLE_FOR: Partial<Record<GraphOp, string>> = {
  sendMail: 'Mail.Send',
  sendDraft: 'Mail.Send',
  createDraft: 'Mail.ReadWrite',
  addAttachment: 'Mail.ReadWrite',
  createUploadSession: 'Mail.ReadWrite',
  deleteDraft: 'Mail.ReadWrite',
};

export function checkBearer(state: EmulatorState, header: string | undefined): Auth {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!match?.[1]) return { ok: false, message: 'Access token is empty.' };
  const claims = verifyHs256(match[1], state.tokenSecret);
  if (!claims) return { ok: false, message: 'IDX14100: JWT is not well formed, or its signature is not valid.' };
  if (claims['aud'] !== state.origin) return { ok: false, message: 'Access token validation failure. Invalid audience.' };
  const tid = claims['tid'];
  if (typeof tid !== 'string' || !state.tenant(tid)) return { ok: false, message: 'Access token validation failure. Invalid tenant.' };
  const exp = claims['exp'];
  if (typeof exp !== 'number' || exp <= Date.now() / 1000) return { ok: false, message: 'Lifetime validation failed, the token is expired.' };
  if (claims['emu_gen'] !== state.tokenGeneration) return { ok: false, message: 'Access token has been revoked.' };
  const roles = claims['roles'];
  return { ok: true, tenantId: tid, roles: Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : null };
}

function latency(state: EmulatorState): number {
  const { latencyMs, jitterMs } = state.faults;
  return Math.max(0, latencyMs + (Math.random() * 2 - 1) * jitterMs);
}

/** A random fault after a submission was recorded (faults.acceptThenResetRate, acceptThenHangRate), or null. */
function submissionFault(state: EmulatorState, op: GraphOp): 'reset' | 'hang' | null {
  if (op !== 'sendMail' && op !== 'sendDraft') return null;
  const { acceptThenResetRate, acceptThenHangRate } = state.faults;
  if (acceptThenResetRate + acceptThenHangRate === 0) return null;
  const roll = Math.random();
  return roll < acceptThenResetRate ? 'reset' : roll < acceptThenResetRate + acceptThenHangRate ? 'hang' : null;
}

/** Never answers: waits until the client gives up and closes the connection (or the emulator resets or closes). */
function hang(req: IncomingMessage, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = (): void => {
      resetConnection(req);
      done();
    };
    if (req.socket.destroyed || signal.aborted) return onAbort();
    req.socket.once('close', done);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Handles a Graph or upload-URL request; returns false when the path belongs elsewhere. */
export async function handleGraph(state: EmulatorState, req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  if (!url.pathname.startsWith('/v1.0/') && !url.pathname.startsWith('/_upload/')) return false;
  const method = req.method ?? 'GET';
  const requestId = randomUUID();
  const clientHeader = req.headers['client-request-id'];
  const clientRequestId = typeof clientHeader === 'string' && clientHeader.length > 0 ? clientHeader : undefined;
  const echoedClientId = clientRequestId ?? requestId;
  res.setHeader('request-id', requestId);
  res.setHeader('client-request-id', echoedClientId);

  const log: RequestLogEntry = { remoteAddress: req.socket.remoteAddress ?? '', method, path: url.pathname, requestId, at: new Date(), inFlightAtStart: 0, status: 0, reset: false };
  state.requests.push(log);
  res.once('finish', () => {
    log.status = res.statusCode;
  });
  res.once('close', () => {
    if (!res.writableFinished) log.reset = true;
    state.emit('request', log);
  });

  let upn: string | undefined;
  let bodyConsumed = false;
  const drain = async (): Promise<{ aborted: boolean; capped: boolean }> => {
    if (bodyConsumed) return { aborted: false, capped: false };
    bodyConsumed = true;
    return readBody(req, 0);
  };
  const reply = async (status: number, code: string, message: string, headers: Record<string, string> = {}): Promise<void> => {
    // Read the rest of the body first so that the client finishes writing and sees the answer, not a reset.
    const drained = await drain();
    if (drained.aborted) return;
    if (status === 429) state.countThrottled(upn);
    const extra: Record<string, string> = drained.capped ? { Connection: 'close' } : {};
    if (status === 401) extra['WWW-Authenticate'] = `Bearer realm="", authorization_uri="${state.origin}/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`;
    sendJson(res, status, graphErrorBody(code, message, requestId, echoedClientId), { ...headers, ...extra });
  };

  const found = route(method, url.pathname);
  if (!('op' in found)) {
    await reply(found.status, found.code, found.message);
    return true;
  }
  log.op = found.op;

  if (state.down === 'reset') {
    resetConnection(req);
    return true;
  }
  if (state.down === '503') {
    await reply(503, 'ServiceUnavailable', 'The service is temporarily unavailable.');
    return true;
  }

  let session: UploadSession | undefined;
  if (found.sessionId !== undefined) {
    // Graph documents that the upload URL must not get the Authorization header: its own authtoken authenticates.
    if (req.headers.authorization !== undefined) {
      await reply(401, 'InvalidAuthenticationToken', 'The upload URL is pre-authenticated; do not send an Authorization header.');
      return true;
    }
    session = state.uploads.get(found.sessionId);
    if (!session || session.draftId !== found.draftIdInUploadUrl) {
      await reply(404, 'ErrorItemNotFound', 'The upload session was not found or has completed.');
      return true;
    }
    if (url.searchParams.get('authtoken') !== session.authToken) {
      await reply(401, 'InvalidAuthenticationToken', 'The authtoken of the upload URL is invalid.');
      return true;
    }
    upn = session.upn;
  } else {
    const auth = checkBearer(state, req.headers.authorization);
    if (!auth.ok) {
      await reply(401, 'InvalidAuthenticationToken', auth.message);
      return true;
    }
    upn = found.upn ?? '';
    log.tenantId = auth.tenantId;
    const mailboxes = state.tenant(auth.tenantId)?.mailboxes;
    if (mailboxes && !mailboxes.has(mailboxKey(upn))) {
      await reply(404, 'ErrorInvalidUser', `The requested user '${upn}' is invalid.`);
      return true;
    }
    const role = ROLE_FOR[found.op];
    if (role && auth.roles && !auth.roles.includes(role)) {
      await reply(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
      return true;
    }
  }
  log.upn = upn;

  const step: ScriptStep | undefined = state.takeStep(upn, found.op);
  if (step && 'resetBeforeBody' in step) {
    resetConnection(req);
    return true;
  }
  if (step && 'status' in step) {
    const [code, message] = SCRIPTED_DEFAULTS[step.status] ?? ['ScriptedError', `Scripted status ${step.status}.`];
    await reply(step.status, step.code ?? code, step.message ?? message, retryAfterHeader(step.retryAfter));
    return true;
  }
  if (step && 'reset' in step) {
    if (!(await drain()).aborted) resetConnection(req);
    return true;
  }
  if (found.op === 'sendMail' && !step && Math.random() < state.faults.randomFaultRate) {
    const pick = Math.floor(Math.random() * 3);
    if (pick === 0) await reply(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { 'Retry-After': '1' });
    else if (pick === 1) await reply(503, 'ServiceUnavailable', 'The service is temporarily unavailable.');
    else if (!(await drain()).aborted) resetConnection(req);
    return true;
  }

  log.inFlightAtStart = state.inFlightFor(upn);
  if (!state.tryEnter(upn)) {
    await reply(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { 'Retry-After': '1' });
    return true;
  }
  state.emit('admitted', log);
  try {
    const limit = found.op === 'uploadChunk' ? MAX_UPLOAD_CHUNK : state.config.maxBodyBytes;
    const body = await readBody(req, limit);
    bodyConsumed = true;
    if (body.aborted) return true;
    if (!body.body) {
      await reply(413, 'RequestEntityTooLarge', `The request body exceeds the maximum of ${limit} bytes.`, body.capped ? { Connection: 'close' } : {});
      return true;
    }
    const resetting = state.resetting.signal;
    const waitSignal = AbortSignal.any([state.closing.signal, resetting]);
    await sleep(latency(state), waitSignal);
    if (step && 'delayMs' in step) await sleep(step.delayMs, waitSignal);
    // A request of an earlier test (the emulator was reset while it waited) must not land in this one's records.
    if (resetting.aborted) {
      resetConnection(req);
      return true;
    }

    const call: GraphCall = {
      state, req, op: found.op, upn, body: body.body, requestId,
      ...(log.tenantId === undefined ? {} : { tenantId: log.tenantId }),
      ...(clientRequestId === undefined ? {} : { clientRequestId }),
      ...(found.draftId === undefined ? {} : { draftId: found.draftId }),
      ...(session === undefined ? {} : { session }),
    };
    let result: Reply;
    try {
      result = HANDLERS[found.op](call);
    } catch (err) {
      if (!(err instanceof GraphError)) throw err;
      await reply(err.status, err.code, err.message, err.headers);
      return true;
    }
    if (step && 'acceptThenReset' in step) {
      resetConnection(req);
      return true;
    }
    if (step && 'acceptThenStatus' in step) {
      const [code, message] = SCRIPTED_DEFAULTS[step.acceptThenStatus] ?? ['ScriptedError', `Scripted status ${step.acceptThenStatus}.`];
      await reply(step.acceptThenStatus, step.code ?? code, message);
      return true;
    }
    const after = step ? null : submissionFault(state, found.op);
    if ((step && 'acceptThenHang' in step) || after === 'hang') {
      await hang(req, waitSignal);
      return true;
    }
    if (after === 'reset') {
      resetConnection(req);
      return true;
    }
    if (result.json === undefined) sendEmpty(res, result.status, result.headers);
    else sendJson(res, result.status, result.json, result.headers);
    return true;
  } finally {
    state.leave(upn);
  }
}

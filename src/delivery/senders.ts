/** How a message leaves the relay: Graph (MIME sendMail, JSON sendMail, or the large-message route), or capture files. */

import { mkdir, open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TokenProvider } from '../auth/token-provider.js';
import { TokenError } from '../auth/token-provider.js';
import { GraphNetworkError, type GraphClient } from '../graph/client.js';
import type { MailboxConfig, SentItemsMode } from '../config/config.js';
import { captureRecord, jsonRequestBody } from '../graph/capture-record.js';
import { postJsonSendMail } from '../graph/json-sendmail.js';
import type { LargeMessageRoute } from '../graph/large-message.js';
import { decodedSize } from '../graph/part-body.js';
import { planRoute, sentItemsKeptMessage, type RouteInput } from '../graph/route-plan.js';
import type { GraphRest } from '../graph/rest.js';
import type { Logger } from '../observability/logger.js';
import { resolveMailbox } from '../policy/mailbox.js';
import type { Envelope, MessageData } from '../spool/spool.js';
import { readRange, readSlice } from '../spool/read-range.js';
import { classifyNetworkError, classifyResponse, classifyTokenError, classifyUnsendable, type Verdict } from './classify.js';
import { base64Length, base64Stream, bccHeader } from './compose.js';

export interface SendResult {
  verdict: Verdict;
  route: 'mime' | 'capture' | 'json' | 'large';
  status?: number;
  code?: string;
  message?: string;
  requestId?: string | null;
  clientRequestId?: string;
}

export interface Sender {
  send(env: Envelope, data: MessageData): Promise<SendResult>;
}

/** Messages up to this size are read and encoded in one piece instead of streamed. */
const BUFFER_BELOW = 256 * 1024;

export class GraphMimeSender implements Sender {
  constructor(
    private readonly client: GraphClient,
    private readonly tokens: TokenProvider,
  ) {}

  async send(env: Envelope, data: MessageData): Promise<SendResult> {
    const prefix = Buffer.from(bccHeader(env.bcc), 'utf8');
    const { file, size } = data;
    const length = base64Length(prefix.length + size);
    // Small messages (most of them) go as one buffer: the stream machinery cost more CPU than the
    // message. Larger ones stream, so memory stays bounded whatever is in flight.
    const small = size <= BUFFER_BELOW ? Buffer.from(Buffer.concat([prefix, data.bytes ?? (await readSlice(file, 0, size))]).toString('base64'), 'latin1') : null;
    // A 401 gets exactly one fresh token and one more try; a second 401 is deferred like any transient.
    for (let tryNo = 0; ; tryNo++) {
      let token: string;
      try {
        token = await this.tokens.getToken(tryNo > 0);
      } catch (err) {
        if (!(err instanceof TokenError)) throw err;
        return { verdict: classifyTokenError(), route: 'mime', code: err.errorCode, message: err.message };
      }
      let bodyDone = false;
      try {
        const body = small ?? base64Stream(prefix, file, size, () => (bodyDone = true));
        if (small && small.length !== length) throw new Error(`${file} changed while being sent`);
        const res = await this.client.sendMime(env.mailbox, token, body, length, () => (small ? true : bodyDone));
        const verdict = classifyResponse(res);
        if (verdict.kind === 'transient' && verdict.refreshToken && tryNo === 0) continue;
        return {
          verdict,
          route: 'mime',
          status: res.status,
          code: res.error?.code,
          message: res.error?.message,
          requestId: res.error?.requestId ?? res.requestId,
          clientRequestId: res.clientRequestId,
        };
      } catch (err) {
        if (!(err instanceof GraphNetworkError)) throw err;
        return { verdict: classifyNetworkError(err), route: 'mime', code: err.code, message: err.message, clientRequestId: err.clientRequestId };
      }
    }
  }
}

export interface RouteOptions {
  maxRequestBytes: number;
  sentItems: SentItemsMode;
  mailboxes: MailboxConfig;
}

/** Decided at delivery time from the sender mapping, so a config change applies to queued mail too. */
function sentItemsFor(env: Envelope, opts: RouteOptions): SentItemsMode {
  const res = resolveMailbox(env.mailFrom, opts.mailboxes);
  return (res.ok && res.sentItems) || opts.sentItems;
}

function routeInput(env: Envelope, data: MessageData, opts: RouteOptions): RouteInput {
  return { mailbox: env.mailbox, bcc: env.bcc, prefix: Buffer.from(bccHeader(env.bcc), 'utf8'), data, sentItems: sentItemsFor(env, opts) };
}

/**
 * Sends each message the way planRoute (src/graph/route-plan.ts) decides: JSON sendMail, MIME sendMail or
 * the large route (null when delivery.largeMessages is off: SMTP ingest then keeps messages over one
 * request out).
 */
export class GraphSender implements Sender {
  constructor(
    private readonly mime: GraphMimeSender,
    private readonly rest: GraphRest,
    private readonly tokens: TokenProvider,
    private readonly large: LargeMessageRoute | null,
    private readonly opts: RouteOptions,
    private readonly log: Logger,
  ) {}

  async send(env: Envelope, data: MessageData): Promise<SendResult> {
    const input = routeInput(env, data, this.opts);
    const { plan, work } = await planRoute(input, { maxRequestBytes: this.opts.maxRequestBytes, largeMessages: this.large !== null });
    if (plan.sentItemsKept) {
      this.log.warn({ qid: env.id, mailbox: env.mailbox, size: data.size, event: 'sent-items-kept', reason: plan.sentItemsKept }, sentItemsKeptMessage(plan.sentItemsKept));
    }
    if (plan.refused) return { verdict: classifyUnsendable(plan.refused.reason), route: plan.route, message: plan.refused.message };
    switch (work.route) {
      case 'json':
        return { ...(await postJsonSendMail(this.rest, this.tokens, env.mailbox, work.body)), route: 'json' };
      case 'mime':
        return this.mime.send(env, data);
      case 'large': {
        if (!this.large) throw new Error('planRoute chose the large route with delivery.largeMessages off');
        const r = await this.large.send({ id: env.id, mailbox: env.mailbox, prefix: input.prefix, dataPath: data.file }, work.large);
        const { draft, attachments, ...rest } = r;
        this.log.debug({ qid: env.id, event: 'large-route', draft, attachments }, 'large-message route');
        return { ...rest, route: 'large' };
      }
      case 'refused':
        throw new Error('planRoute refused the message without saying why');
    }
  }
}

/**
 * Writes what graph mode would do, without sending: <id>.eml (the exact MIME that MIME sendMail sends),
 * <id>.json (the route planRoute picks, its permission, requests, recipients and why), and for a JSON
 * first request its body as <id>.request.json. A message graph mode would refuse is refused here too.
 */
export class CaptureSender implements Sender {
  constructor(
    private readonly directory: string,
    private readonly graphUrl: string,
    private readonly opts: RouteOptions & { largeMessages: boolean },
  ) {}

  async send(env: Envelope, data: MessageData): Promise<SendResult> {
    await mkdir(this.directory, { recursive: true });
    const input = routeInput(env, data, this.opts);
    const planned = await planRoute(input, { maxRequestBytes: this.opts.maxRequestBytes, largeMessages: this.opts.largeMessages, measure: decodedSize });
    const emlPath = path.join(this.directory, `${env.id}.eml`);
    const out = await open(emlPath, 'w');
    try {
      await out.write(input.prefix);
      for await (const chunk of readRange(data.file, 0, data.size)) await out.write(chunk);
    } finally {
      await out.close();
    }
    const json = jsonRequestBody(planned.work);
    if (json) await writeFile(path.join(this.directory, `${env.id}.request.json`), json);
    const record = await captureRecord(env, input, planned, this.graphUrl);
    await writeFile(path.join(this.directory, `${env.id}.json`), `${JSON.stringify(record, null, 2)}\n`);
    if (planned.plan.refused) return { verdict: classifyUnsendable(planned.plan.refused.reason), route: 'capture', message: planned.plan.refused.message };
    return { verdict: { kind: 'delivered' }, route: 'capture', status: 202 };
  }
}

/** How a message leaves the relay: Graph (MIME sendMail, JSON sendMail, or the large-message route), or capture files. */

import { mkdir, open, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TokenProvider } from '../auth/token-provider.js';
import { TokenError } from '../auth/token-provider.js';
import { GraphNetworkError, type GraphClient } from '../graph/client.js';
import type { MailboxConfig, SentItemsMode } from '../config/config.js';
import { buildJsonSendMail, postJsonSendMail } from '../graph/json-sendmail.js';
import type { LargeMessageRoute } from '../graph/large-message.js';
import type { GraphRest } from '../graph/rest.js';
import type { Logger } from '../observability/logger.js';
import { resolveMailbox } from '../policy/mailbox.js';
import type { Envelope, MessageData } from '../spool/spool.js';
import { readRange, readSlice } from '../spool/read-range.js';
import { classifyNetworkError, classifyResponse, classifyTokenError, type Verdict } from './classify.js';
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

/**
 * Picks the route per message: JSON sendMail when the mailbox discards Sent Items and the request fits;
 * MIME sendMail when the base64 request fits; otherwise the large route (null when delivery.largeMessages
 * is off, and then the message cannot be carried: SMTP ingest keeps such messages out in that case).
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

  /** Decided at delivery time from the sender mapping, so a config change applies to queued mail too. */
  private sentItemsFor(env: Envelope): SentItemsMode {
    const res = resolveMailbox(env.mailFrom, this.opts.mailboxes);
    return (res.ok && res.sentItems) || this.opts.sentItems;
  }

  async send(env: Envelope, data: MessageData): Promise<SendResult> {
    const prefix = Buffer.from(bccHeader(env.bcc), 'utf8');
    const { file: dataPath, size } = data;
    const fitsMime = base64Length(prefix.length + size) <= this.opts.maxRequestBytes;
    const discard = this.sentItemsFor(env) === 'discard';
    if (discard && size <= this.opts.maxRequestBytes) {
      const body = await buildJsonSendMail(data, env.bcc, this.opts.maxRequestBytes);
      if (body) return { ...(await postJsonSendMail(this.rest, this.tokens, env.mailbox, body)), route: 'json' };
    }
    if (discard) {
      this.log.warn({ qid: env.id, mailbox: env.mailbox, size, event: 'sent-items-kept' }, 'sentItems is discard, but the message is too big for JSON sendMail: Graph keeps its copy in Sent Items');
    }
    if (fitsMime) return this.mime.send(env, data);
    if (!this.large) {
      return { verdict: { kind: 'permanent', reason: 'message-too-big' }, route: 'mime', message: `the message (${size} bytes) exceeds one Graph request and delivery.largeMessages is off` };
    }
    const r = await this.large.send({ id: env.id, mailbox: env.mailbox, bcc: env.bcc, prefix, dataPath, size });
    const { draft, attachments, ...rest } = r;
    this.log.debug({ qid: env.id, draft, attachments }, 'large-message route');
    return { ...rest, route: 'large' };
  }
}

/** Writes what would be sent: <id>.eml (the exact MIME) and <id>.json (mailbox, request, recipients). */
export class CaptureSender implements Sender {
  constructor(
    private readonly directory: string,
    private readonly graphUrl: string,
  ) {}

  async send(env: Envelope, data: MessageData): Promise<SendResult> {
    await mkdir(this.directory, { recursive: true });
    const prefix = Buffer.from(bccHeader(env.bcc), 'utf8');
    const emlPath = path.join(this.directory, `${env.id}.eml`);
    const out = await open(emlPath, 'w');
    try {
      await out.write(prefix);
      for await (const chunk of readRange(data.file, 0, data.size)) await out.write(chunk);
    } finally {
      await out.close();
    }
    const { size } = await stat(emlPath);
    const record = {
      queueId: env.id,
      mailbox: env.mailbox,
      request: {
        method: 'POST',
        url: `${this.graphUrl}/v1.0/users/${encodeURIComponent(env.mailbox)}/sendMail`,
        headers: { 'Content-Type': 'text/plain', 'Content-Length': base64Length(size) },
        body: `base64 of ${path.basename(emlPath)} (${size} bytes)`,
      },
      envelope: { mailFrom: env.mailFrom, rcptTo: env.rcptTo },
      bccAdded: env.bcc,
      client: { address: env.clientAddress, helo: env.helo, listener: env.listener },
      receivedAt: env.receivedAt,
      capturedAt: new Date().toISOString(),
    };
    await writeFile(path.join(this.directory, `${env.id}.json`), `${JSON.stringify(record, null, 2)}\n`);
    return { verdict: { kind: 'delivered' }, route: 'capture', status: 202 };
  }
}

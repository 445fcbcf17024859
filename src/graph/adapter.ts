/**
 * The Graph adapter: the one way a message leaves for Microsoft Graph. It plans the route (route-plan.ts),
 * runs it over one HTTP client with one token handling, and answers with one classified outcome.
 */

import type { TokenProvider } from '../auth/token-provider.js';
import type { SentItemsMode } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import { base64Length, base64Stream, bccHeader } from '../mime/compose.js';
import { readSlice, type MessageData } from '../mime/message-file.js';
import { AttemptFailed, GraphAttempt, delivered, type Outcome } from './attempt.js';
import { classifyUnsendable } from './classify.js';
import type { GraphHttp } from './http.js';
import { postJsonSendMail } from './json-sendmail.js';
import { LargeMessageRoute } from './large-message.js';
import { sendMailPath } from './planned-requests.js';
import { planRoute, sentItemsKeptMessage, type RouteInput, type RouteName } from './route-plan.js';
import { findInSentItems, type LookupQuery, type LookupResult } from './sent-items.js';
import { UploadBudget } from './upload-budget.js';

/** What the adapter sends: the spooled message and what the relay decided about it. */
export interface OutgoingMessage {
  /** The queue id: in the log, and in the names of temporary files. */
  id: string;
  mailbox: string;
  /** Envelope recipients the headers do not name: sent in a Bcc: header in front of the MIME. */
  bcc: readonly string[];
  sentItems: SentItemsMode;
  data: MessageData;
  /** Awaited right before the first request that can submit the message (sendMail, sending the draft). */
  beforeSubmit?: () => Promise<void>;
}

export interface SendResult extends Outcome {
  /** `lookup`: the outcome of a Sent Items look-up that failed for now. */
  route: RouteName | 'capture' | 'lookup';
}

export interface GraphAdapterOptions {
  maxRequestBytes: number;
  /** Without it, a message over one request is refused (SMTP ingest keeps such messages out). */
  largeMessages: boolean;
  uploadBudgetBytes: number;
  uploadBudgetWindowMs: number;
  /** Where the large route decodes big attachments while they upload (the spool's tmp/, emptied at start). */
  tmpDir: string;
  /** The Graph account this adapter sends for, in its log lines. */
  account?: string;
  /** Whether the account's permissions allow the large route now (Mail.ReadWrite, or unknown); default: yes. */
  draftsAllowed?: () => boolean;
}

/** Messages up to this size are read and encoded in one piece instead of streamed. */
const BUFFER_BELOW = 256 * 1024;

export class GraphAdapter {
  private readonly large: LargeMessageRoute | null;

  constructor(
    private readonly http: GraphHttp,
    private readonly tokens: TokenProvider,
    private readonly opts: GraphAdapterOptions,
    private readonly log: Logger,
  ) {
    const budget = new UploadBudget(opts.uploadBudgetBytes, opts.uploadBudgetWindowMs);
    this.large = opts.largeMessages ? new LargeMessageRoute({ http, tokens, budget, tmpDir: opts.tmpDir }) : null;
  }

  async send(msg: OutgoingMessage): Promise<SendResult> {
    const input = routeInput(msg);
    const account = this.opts.account;
    const permitted = await this.draftsPermitted(msg.data.size);
    const { plan, work } = await planRoute(input, { maxRequestBytes: this.opts.maxRequestBytes, largeMessages: this.large !== null && permitted });
    if (plan.sentItemsKept) {
      this.log.warn({ qid: msg.id, account, mailbox: msg.mailbox, size: msg.data.size, event: 'sent-items-kept', reason: plan.sentItemsKept }, sentItemsKeptMessage(plan.sentItemsKept));
    }
    if (plan.refused) {
      // Graph would refuse the draft with 403: said now, with the reason, rather than after the requests.
      const why = this.large && !permitted && plan.refused.reason === 'message-too-big' ? `the message (${msg.data.size} bytes) exceeds one Graph request, and account "${account}" has no Mail.ReadWrite permission, which the large-message route needs` : plan.refused.message;
      return { verdict: classifyUnsendable(plan.refused.reason), route: plan.route, message: why };
    }
    switch (work.route) {
      case 'json':
        await msg.beforeSubmit?.();
        return { ...(await postJsonSendMail(this.http, this.tokens, msg.mailbox, work.body)), route: 'json' };
      case 'mime':
        return { ...(await this.sendMime(msg, input.prefix)), route: 'mime' };
      case 'large': {
        if (!this.large) throw new Error('planRoute chose the large route with delivery.largeMessages off');
        const { draft, attachments, ...outcome } = await this.large.send({ id: msg.id, mailbox: msg.mailbox, prefix: input.prefix, dataPath: msg.data.file, beforeSubmit: msg.beforeSubmit }, work.large);
        this.log.debug({ qid: msg.id, account, event: 'large-route', draft, attachments }, 'large-message route');
        return { ...outcome, route: 'large' };
      }
      case 'refused':
        throw new Error('planRoute refused the message without saying why');
    }
  }

  /**
   * Whether the large route may run: asked after the token, so that a renewed token's roles decide (an
   * administrator removed Mail.ReadWrite: refused here, not by Graph after a draft). Only a message that
   * may need the route asks; a token failure is left for the route's own attempt to report.
   */
  private async draftsPermitted(size: number): Promise<boolean> {
    if (!this.large || !this.opts.draftsAllowed || size <= BUFFER_BELOW) return true;
    await this.tokens.getToken().catch(() => undefined);
    return this.opts.draftsAllowed();
  }

  /**
   * MIME sendMail: the Bcc prefix and the message as base64. Small messages (most of them) go as one buffer,
   * the stream machinery costing more CPU than the message; larger ones stream, so memory stays bounded.
   */
  private async sendMime(msg: OutgoingMessage, prefix: Buffer): Promise<Outcome> {
    const { file, size } = msg.data;
    const length = base64Length(prefix.length + size);
    const small = size <= BUFFER_BELOW ? Buffer.from(Buffer.concat([prefix, msg.data.bytes ?? (await readSlice(file, 0, size))]).toString('base64'), 'latin1') : null;
    if (small && small.length !== length) throw new Error(`${file} changed while being sent`);
    const attempt = new GraphAttempt(this.http, this.tokens, msg.mailbox);
    await msg.beforeSubmit?.();
    try {
      const body = (): Buffer | AsyncIterable<Buffer> => small ?? base64Stream(prefix, file, size);
      return delivered(await attempt.call('sendMail', { method: 'POST', path: sendMailPath(msg.mailbox), contentType: 'text/plain', body, length }));
    } catch (err) {
      if (err instanceof AttemptFailed) return err.outcome;
      throw err;
    }
  }

  /** The Sent Items look-up for a message whose attempt ended without knowing (sent-items.ts). */
  findSent(q: LookupQuery): Promise<LookupResult> {
    return findInSentItems(this.http, this.tokens, q);
  }
}

/** What planRoute reads of a message: the Bcc prefix is built once, here. */
export function routeInput(msg: OutgoingMessage): RouteInput {
  return { mailbox: msg.mailbox, bcc: msg.bcc, prefix: Buffer.from(bccHeader(msg.bcc), 'utf8'), data: msg.data, sentItems: msg.sentItems };
}

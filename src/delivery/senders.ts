/** How a spooled message leaves the relay: through the Graph adapter, or into capture files that show what Graph would get. */

import { mkdir, open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { MailboxConfig, SentItemsMode } from '../config/config.js';
import { routeInput, type GraphAdapter, type OutgoingMessage, type SendResult } from '../graph/adapter.js';
import { classifyUnsendable } from '../graph/classify.js';
import { planRoute } from '../graph/route-plan.js';
import type { LookupQuery, LookupResult } from '../graph/sent-items.js';
import { readRange, type MessageData } from '../mime/message-file.js';
import { decodedSize } from '../mime/part-body.js';
import { resolveMailbox } from '../policy/mailbox.js';
import { accountOf, type Envelope } from '../spool/envelope.js';
import { captureRecord, jsonRequestBody } from './capture-record.js';

export type { SendResult } from '../graph/adapter.js';

export interface Sender {
  /**
   * `beforeSubmit`, when given, is awaited right before the first request that can submit the message (the
   * in-flight journal's start); when it rejects, nothing is sent and send rejects with its error.
   */
  send(env: Envelope, data: MessageData, beforeSubmit?: () => Promise<void>): Promise<SendResult>;
  /** The Sent Items look-up for this message (delivery/unknown-outcome.ts); absent where there is no Sent Items (capture). */
  findSent?(env: Envelope, q: LookupQuery): Promise<LookupResult>;
  /** Whether this message goes with a copy kept in Sent Items for sure (false: sentItems discard, so maybe not). */
  keepsCopy?(env: Envelope): boolean;
}

export interface SenderOptions {
  /** delivery.sentItems, and the mappings that override it. */
  sentItems: SentItemsMode;
  mailboxes: MailboxConfig;
}

/** Decided at delivery time from the sender mapping, so a config change applies to queued mail too. */
export function outgoing(env: Envelope, data: MessageData, opts: SenderOptions): OutgoingMessage {
  return { id: env.id, mailbox: env.mailbox, bcc: env.bcc, sentItems: sentItemsMode(env, opts), data };
}

function sentItemsMode(env: Envelope, opts: SenderOptions): SentItemsMode {
  const res = resolveMailbox(env.mailFrom, opts.mailboxes);
  return (res.ok && res.sentItems) || opts.sentItems;
}

/** Sends each message through the adapter of its account (env.account, decided when it was accepted). */
export class GraphSender implements Sender {
  constructor(
    private readonly adapter: (account: string) => GraphAdapter | null,
    private readonly opts: SenderOptions,
  ) {}

  async send(env: Envelope, data: MessageData, beforeSubmit?: () => Promise<void>): Promise<SendResult> {
    const account = accountOf(env);
    const graph = this.adapter(account);
    // Queued under an account the configuration no longer has: kept and retried, so a fixed configuration delivers it.
    if (!graph) return { verdict: { kind: 'transient', reason: 'unknown-account' }, route: 'mime', message: `no Graph account "${account}" in the configuration (the message was accepted for it)` };
    return graph.send({ ...outgoing(env, data, this.opts), ...(beforeSubmit ? { beforeSubmit } : {}) });
  }

  /** In the Sent Items of the message's mailbox, through its account. */
  async findSent(env: Envelope, q: LookupQuery): Promise<LookupResult> {
    const graph = this.adapter(accountOf(env));
    if (!graph) return { kind: 'failed', verdict: { kind: 'transient', reason: 'unknown-account' }, message: `no Graph account "${accountOf(env)}" in the configuration` };
    return graph.findSent(q);
  }

  keepsCopy(env: Envelope): boolean {
    return sentItemsMode(env, this.opts) === 'keep';
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
    private readonly opts: SenderOptions & { maxRequestBytes: number; largeMessages: boolean },
  ) {}

  async send(env: Envelope, data: MessageData): Promise<SendResult> {
    await mkdir(this.directory, { recursive: true });
    const input = routeInput(outgoing(env, data, this.opts));
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

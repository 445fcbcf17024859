/** Delivery status notifications (RFC 3464): the message that tells a sender their mail failed. */

import { randomBytes } from 'node:crypto';
import type { BounceConfig } from '../config/config.js';
import { rfc5322Date } from '../mime/received.js';
import { enhancedStatus } from '../graph/classify.js';
import { newQueueId } from '../spool/queue-id.js';
import type { Spool } from '../spool/spool.js';
import type { Envelope, SpoolState } from '../spool/envelope.js';
import { readHeaderSection } from '../spool/header-section.js';

export type DsnKind = 'failed' | 'delayed';

/** RFC 3463 status for a last error: what the sender's mail client shows. */
export function dsnStatus(env: Envelope, kind: DsnKind): string {
  if (kind === 'delayed') return '4.4.1';
  return enhancedStatus(env.lastError?.reason ?? 'unknown', 'permanent');
}

function wrap(text: string): string {
  return text.replace(/(.{1,76})(\s+|$)/g, '$1\r\n').trimEnd();
}

export interface DsnInput {
  env: Envelope;
  kind: DsnKind;
  postmaster: string;
  reportingMta: string;
  originalHeaders: Buffer;
  now?: Date;
}

export function buildDsn({ env, kind, postmaster, reportingMta, originalHeaders, now = new Date() }: DsnInput): Buffer {
  const boundary = `dsn-${randomBytes(12).toString('hex')}`;
  const status = dsnStatus(env, kind);
  const e = env.lastError;
  const graphDetail = e ? [e.status && `HTTP ${e.status}`, e.code, e.message].filter(Boolean).join(' ') : 'no detail';
  const subject = kind === 'failed' ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)';
  const intro =
    kind === 'failed'
      ? `This is the mail relay at ${reportingMta}. Your message could not be delivered to the recipients below, and it will not be retried.`
      : `This is the mail relay at ${reportingMta}. Your message has not been delivered yet. It is still being retried; you do not need to send it again.`;
  const human = [
    wrap(intro),
    '',
    ...env.rcptTo.map((r) => `<${r}>: ${graphDetail.replace(/[\r\n]+/g, ' ')}`),
    '',
    wrap(`Queue id ${env.id}, sending mailbox ${env.mailbox}, ${env.attempts} delivery attempt(s) since ${env.receivedAt}.`),
  ].join('\r\n');
  const perRecipient = recipientFields(env, kind, status, graphDetail, e ? Date.parse(e.at) : now.getTime());
  const parts = [
    `From: Mail Delivery System <${postmaster}>`,
    `To: <${env.mailFrom}>`,
    `Subject: ${subject}`,
    `Date: ${rfc5322Date(now.getTime())}`,
    `Message-ID: <${env.id}.${kind}.${now.getTime()}@${reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated delivery status notification.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    'Content-Description: Notification',
    '',
    human,
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    'Content-Description: Delivery report',
    '',
    `Reporting-MTA: dns; ${reportingMta}`,
    `X-Relay-Queue-ID: ${env.id}`,
    `Arrival-Date: ${rfc5322Date(Date.parse(env.receivedAt))}`,
    '',
    perRecipient,
    '',
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    'Content-Description: Undelivered message headers',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(`${parts}\r\n`, 'utf8'), originalHeaders, Buffer.from(`\r\n--${boundary}--\r\n`)]);
}

/** The message/delivery-status fields of each recipient (RFC 3464 section 2.3). */
function recipientFields(env: Envelope, kind: DsnKind, status: string, detail: string, lastAttempt: number): string {
  return env.rcptTo
    .map((r) =>
      [
        `Final-Recipient: rfc822; ${r}`,
        `Original-Recipient: rfc822; ${r}`,
        `Action: ${kind}`,
        `Status: ${status}`,
        `Diagnostic-Code: X-Graph; ${detail.replace(/[\r\n]+/g, ' ').slice(0, 900)}`,
        `Last-Attempt-Date: ${rfc5322Date(lastAttempt)}`,
      ].join('\r\n'),
    )
    .join('\r\n\r\n');
}

/** Whether a failed message may be bounced at all: never to <>, never a bounce. */
export function mayBounce(env: Envelope): boolean {
  return env.mailFrom !== '' && !env.isBounce;
}

/** Writes a notification into the spool as a message of its own, so it is delivered (and retried) like any other. */
export async function spoolDsn(spool: Spool, state: SpoolState, env: Envelope, kind: DsnKind, postmaster: string, reportingMta: string, account?: string): Promise<Envelope> {
  const originalHeaders = await readHeaderSection(spool, state, env);
  const dsn = buildDsn({ env, kind, postmaster, reportingMta, originalHeaders });
  const id = newQueueId();
  const writer = spool.beginMessage(id);
  try {
    await writer.write(dsn);
    const now = new Date().toISOString();
    const bounce: Envelope = {
      version: 1,
      id,
      mailFrom: '',
      rcptTo: [env.mailFrom],
      mailbox: postmaster,
      ...(account ?? env.account ? { account: account ?? env.account } : {}),
      bcc: [],
      clientAddress: '127.0.0.1',
      clientHostname: 'localhost',
      helo: reportingMta,
      listener: 'bounce',
      receivedAt: now,
      size: writer.bytes,
      attempts: 0,
      nextAttemptAt: now,
      lastError: null,
      isBounce: true,
    };
    await spool.commit(writer, bounce);
    return bounce;
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

/** Writes notifications for the engine: decides whether one is owed and spools it; the engine hands it to the scheduler. */
export class Bouncer {
  constructor(
    private readonly spool: Spool,
    private readonly cfg: BounceConfig,
    private readonly reportingMta: string,
    /** The account that sends a notice about this message (the postmaster's: src/app/create-relay.ts); default: the message's own. */
    private readonly accountFor: (original: Envelope) => string | undefined = (e) => e.account,
  ) {}

  /** The notice for a message that failed for good; null when none is owed or possible (the caller logs why). */
  async failed(env: Envelope, state: SpoolState): Promise<Envelope | null> {
    if (!this.cfg.postmaster || !mayBounce(env)) return null;
    return spoolDsn(this.spool, state, env, 'failed', this.cfg.postmaster, this.reportingMta, this.accountFor(env));
  }

  /** A one-time "still trying" notice once a message has waited delayWarningAfter. */
  async delayed(env: Envelope, now: number): Promise<Envelope | null> {
    const after = this.cfg.delayWarningAfterMs;
    if (after === null || !this.cfg.postmaster || env.delayWarned || !mayBounce(env)) return null;
    if (now - Date.parse(env.receivedAt) < after) return null;
    const dsn = await spoolDsn(this.spool, 'queue', env, 'delayed', this.cfg.postmaster, this.reportingMta, this.accountFor(env));
    env.delayWarned = true;
    return dsn;
  }
}

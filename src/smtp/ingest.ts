/** DATA: the message streams to the spool behind its cleaned-up header section; 250 only once the spool owns it (RFC 5321 section 6.1). */

import { unlink } from 'node:fs/promises';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { cleanupHeaders, type Cleaned, type CleanupSettings } from '../cleanup/cleanup.js';
import type { RewriteFromMode } from '../config/config.js';
import { maxRawForRequest } from '../config/config.js';
import { ClientGone, SmtpReply } from '../errors.js';
import { bccHeader } from '../mime/compose.js';
import { HeaderCollector } from '../mime/headers.js';
import { subjectOf } from '../mime/subject.js';
import { isoTime } from '../observability/iso-time.js';
import { mailboxForSession, type SessionMailbox } from '../policy/senders.js';
import type { Envelope } from '../spool/envelope.js';
import { newQueueId } from '../spool/queue-id.js';
import type { SpoolWriter } from '../spool/writer.js';
import { LineEndingGuard } from './line-endings.js';
import type { ListenerContext, SessionAccount } from './session.js';

export class DataIngest {
  constructor(private readonly ctx: ListenerContext) {}

  /** The reply to a DATA that did not end in a 250. */
  failureReply(err: unknown, session: SMTPServerSession): SmtpReply {
    if (err instanceof SmtpReply) return err;
    if (err instanceof ClientGone) return this.clientGone(err, session);
    return this.internalError(err, session);
  }

  private clientGone(err: ClientGone, session: SMTPServerSession): SmtpReply {
    this.ctx.log.warn({ event: 'client-gone', client: session.remoteAddress, listener: this.ctx.listener.name, reason: err.message }, 'client went away during DATA; nothing was accepted');
    return new SmtpReply(421, '4.4.2 Connection closed during DATA');
  }

  private internalError(err: unknown, session: SMTPServerSession): SmtpReply {
    this.ctx.log.error({ event: 'spool-failed', err, client: session.remoteAddress }, 'could not spool message');
    return new SmtpReply(451, '4.3.0 Local error in processing: the message could not be stored, try again later');
  }

  /**
   * DATA: the header section is held until it is whole (at most limits.maxHeaderSize), cleaned up (policy on
   * what Graph will see, From rewrite, Received) and written; the body streams to the spool behind it. The
   * stream is always read to its end: smtp-server answers only then, and a refusal must not leave data unread.
   */
  async run(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const id = newQueueId();
    const nowMs = Date.now();
    const rx = new Reception(this.ctx.spool.beginMessage(id), this.ctx.cfg.limits, (head) => this.cleanup(id, nowMs, head, session));
    // 'data' events rather than for await: the async iterator cost a few percent of ingest CPU.
    const ended = dataEnd(stream);
    stream.on('data', (raw: Buffer) => rx.take(raw, stream));
    try {
      await ended;
    } catch (err) {
      // The client went away mid-DATA: nothing was acknowledged, so nothing is kept.
      await rx.writer.abort();
      throw new ClientGone((err as Error).message);
    }
    const done = await rx.end(stream.sizeExceeded);
    if (!done.ok) {
      await rx.writer.abort();
      if (done.why === 'size') throw this.ctx.reject(session, 'size', new SmtpReply(552, `5.3.4 Message too big: the limit is ${this.ctx.cfg.limits.maxMessageSize} bytes`));
      if (done.why === 'line-endings') throw this.ctx.reject(session, 'line-endings', new SmtpReply(550, `5.6.0 Message refused: ${done.violation}`));
      throw done.failure;
    }
    try {
      return await this.accept(id, nowMs, rx.writer, done.cleaned, done.mailbox, done.account, session);
    } catch (err) {
      await rx.writer.abort();
      throw err;
    }
  }

  /** The transaction's header section, cleaned up; a refusal is logged and counted here. */
  private cleanup(id: string, nowMs: number, head: HeaderCollector, session: SMTPServerSession): Decided | { ok: false; reply: SmtpReply } {
    const rule = this.ctx.ruleFor(session);
    const state = this.ctx.sessions.get(session.id);
    const resolution = state?.mailbox ?? mailboxForSession(session.envelope.mailFrom ? session.envelope.mailFrom.address : '', rule, this.ctx.cfg.mailboxes);
    if (!resolution.ok) return { ok: false, reply: this.ctx.reject(session, 'no-mailbox', new SmtpReply(550, `5.7.1 ${resolution.reason}`)) };
    const account = state?.account ?? this.ctx.accounts.choose({ rule, mapping: 'account' in resolution ? resolution.account : undefined, listener: this.ctx.listener, mailbox: resolution.mailbox });
    if (!account.ok) return { ok: false, reply: this.ctx.reject(session, 'no-account', new SmtpReply(550, `5.7.1 ${account.reason}`)) };
    const r = cleanupHeaders({
      block: head.block ?? Buffer.alloc(0),
      complete: head.complete,
      rcptTo: session.envelope.rcptTo.map((x) => x.address),
      mailbox: resolution.mailbox,
      rule,
      received: {
        helo: session.hostNameAppearsAs,
        clientAddress: session.remoteAddress,
        clientHostname: session.clientHostname,
        byHost: this.ctx.cfg.hostname,
        protocol: session.transmissionType || 'ESMTP',
        queueId: id,
        date: nowMs,
      },
      settings: this.cleanupSettings('rewriteFrom' in resolution ? resolution.rewriteFrom : undefined),
    });
    if (!r.ok) return { ok: false, reply: this.ctx.reject(session, r.reason, new SmtpReply(r.code, r.text)) };
    return { ok: true, cleaned: r, mailbox: resolution, account };
  }

  private cleanupSettings(rewriteFrom: RewriteFromMode | undefined): CleanupSettings {
    const { limits, policy, delivery, mailboxes } = this.ctx.cfg;
    return {
      maxHeaderSize: limits.maxHeaderSize,
      maxReceivedHeaders: limits.maxReceivedHeaders,
      maxRecipients: limits.maxRecipients,
      policy,
      headerOnlyRecipients: delivery.headerOnlyRecipients,
      rewriteFrom: rewriteFrom ?? mailboxes.rewriteFrom,
      replyToOriginalFrom: mailboxes.replyToOriginalFrom,
    };
  }

  /** The message is whole and clean: commit it to the spool (or pass it through), then say so. */
  private async accept(id: string, nowMs: number, writer: SpoolWriter, cleaned: Cleaned, resolution: SessionMailbox & { ok: true }, account: SessionAccount, session: SMTPServerSession): Promise<string> {
    const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const rcptTo = session.envelope.rcptTo.map((r) => r.address);
    const outgoing = writer.bytes + Buffer.byteLength(bccHeader(cleaned.bcc));
    const maxRaw = maxRawForRequest(this.ctx.cfg.graph.maxRequestBytes);
    // With the large-message route, size is bounded by limits.maxMessageSize alone (checked while receiving).
    if (!this.ctx.cfg.delivery.largeMessages && outgoing > maxRaw) {
      throw this.ctx.reject(session, 'size', new SmtpReply(552, `5.3.4 Message too big: with its ${rcptTo.length} recipients it exceeds what one Graph request carries (${maxRaw} bytes)`));
    }
    // The account's permissions may allow less than limits.maxMessageSize (no Mail.ReadWrite: one request).
    const limit = this.ctx.events.sizeLimit?.(account.account);
    if (limit && outgoing > limit.bytes) throw this.ctx.reject(session, 'size', new SmtpReply(552, `5.3.4 Message too big: ${limit.why}`));
    const at = isoTime(nowMs);
    const env: Envelope = {
      version: 1,
      id,
      mailFrom,
      rcptTo,
      mailbox: resolution.mailbox,
      account: account.account,
      bcc: cleaned.bcc,
      clientAddress: session.remoteAddress,
      clientHostname: session.clientHostname,
      helo: session.hostNameAppearsAs,
      listener: this.ctx.listener.name,
      receivedAt: at,
      size: writer.bytes,
      messageId: cleaned.messageId,
      attempts: 0,
      nextAttemptAt: at,
      lastError: null,
    };
    if (this.ctx.events.passthrough) {
      await writer.finish();
      env.attempts = 1;
      try {
        const answer = await this.ctx.events.passthrough(env, writer.data());
        if (answer.accepted) return answer.text;
        throw new SmtpReply(answer.code, answer.text);
      } finally {
        await unlink(writer.tmpPath).catch(() => undefined);
      }
    }
    await this.ctx.spool.commit(writer, env);
    this.logAccepted(env, resolution.rule, account.rule, cleaned);
    this.ctx.events.accepted(env, nowMs, {
      messageId: cleaned.messageId,
      subject: this.ctx.cfg.history.storeSubjects ? subjectOf(cleaned.header) : null,
      user: session.user ? String(session.user) : null,
      tls: session.tlsOptions ? session.tlsOptions.version : null,
    });
    return `2.0.0 Ok: queued as ${id}`;
  }

  private logAccepted(env: Envelope, rule: string, accountRule: string, cleaned: Cleaned): void {
    const qid = env.id;
    const account = env.account;
    if (cleaned.from) {
      const f = cleaned.from;
      this.ctx.log.info({ qid, account, event: 'from-rewritten', mailbox: env.mailbox, from: f.originalFrom, sender: f.originalSender, replyTo: f.replyToAdded }, 'From rewritten to the sending mailbox (mailboxes.rewriteFrom)');
    }
    const { clientAddress: client, listener, mailFrom: from, size } = env;
    const counts = { rcpts: env.rcptTo.length, graphRcpts: cleaned.graphRecipients, bccAdded: cleaned.bcc.length, headerOnlyRcpts: cleaned.headerOnly.length };
    this.ctx.log.info({ qid, event: 'received', account, accountRule, mailbox: env.mailbox, rule, client, listener, from, ...counts, size, messageId: cleaned.messageId, ...(cleaned.messageIdAdded ? { messageIdAdded: true } : {}) }, 'message accepted');
    if (cleaned.endedAtNonField) this.ctx.log.info({ qid, account, event: 'header-repaired' }, 'a line that is not a header field ended the header section: the empty line was put before it');
    if (cleaned.headerOnly.length > 0) {
      if (cleaned.headerOnlyRemoved) this.ctx.log.info({ qid, account, event: 'header-only-removed', headerOnlyRcpts: cleaned.headerOnly.length }, 'header recipients that are not envelope recipients were removed from To/Cc/Bcc (delivery.headerOnlyRecipients: envelope)');
      else this.ctx.log.warn({ qid, account, event: 'header-only-recipients', headerOnlyRcpts: cleaned.headerOnly.length }, 'header recipients that are not envelope recipients will receive the message too (delivery.headerOnlyRecipients: deliver)');
    }
  }
}

/** What cleanup decided for a transaction: its header section, mailbox and account. */
type Decided = { ok: true; cleaned: Cleaned; mailbox: SessionMailbox & { ok: true }; account: SessionAccount };
type Cleanup = (head: HeaderCollector) => Decided | { ok: false; reply: SmtpReply };
type Ending =
  | Decided
  | { ok: false; why: 'size' }
  | { ok: false; why: 'line-endings'; violation: string }
  | { ok: false; why: 'failure'; failure: unknown };

/**
 * One DATA as it arrives: the smuggling guard first, the header section held until it is whole and cleaned
 * up, then everything written to the spool file with backpressure. The stream is always read to its end:
 * smtp-server answers only then, and a refusal must not leave data unread.
 */
class Reception {
  private readonly head: HeaderCollector;
  private readonly guard: LineEndingGuard;
  private cleaned: Omit<Decided, 'ok'> | null = null;
  private failure: unknown = null;
  private stream: SMTPServerDataStream | null = null;

  constructor(
    readonly writer: SpoolWriter,
    limits: { maxHeaderSize: number; bareLineEndings: 'reject' | 'normalize'; maxLineLength: number },
    private readonly cleanup: Cleanup,
  ) {
    this.head = new HeaderCollector(limits.maxHeaderSize);
    this.guard = new LineEndingGuard(limits.bareLineEndings, limits.maxLineLength);
  }

  take(raw: Buffer, stream: SMTPServerDataStream): void {
    this.stream = stream;
    if (this.failure || stream.sizeExceeded) return;
    const chunk = this.guard.push(raw);
    if (!chunk) return;
    if (this.cleaned) return this.write(chunk);
    const body = this.head.push(chunk);
    if (body) this.headerDone(body);
  }

  /** DATA ended: the guard's held-back bytes, a section without a body, and the verdict. */
  async end(sizeExceeded: boolean): Promise<Ending> {
    const tail = this.failure ? null : this.guard.end();
    if (tail) {
      if (this.cleaned) await this.writer.write(tail)?.catch((err: unknown) => (this.failure = err));
      else {
        const body = this.head.push(tail);
        if (body) this.headerDone(body);
      }
    }
    // A message of header fields only (no empty line): all of it is the header section.
    if (!this.cleaned && !this.failure && !sizeExceeded && !this.guard.violation) {
      this.head.finish();
      this.headerDone(Buffer.alloc(0));
    }
    if (sizeExceeded) return { ok: false, why: 'size' };
    if (!this.failure && this.guard.violation) return { ok: false, why: 'line-endings', violation: this.guard.violation };
    if (this.failure || !this.cleaned) return { ok: false, why: 'failure', failure: this.failure ?? new Error('no header section') };
    return { ok: true, ...this.cleaned };
  }

  /** The header section is whole: decide, then write it and what followed it in the same chunk. */
  private headerDone(body: Buffer): void {
    const c = this.cleanup(this.head);
    if (!c.ok) {
      this.failure = c.reply;
      return;
    }
    this.cleaned = { cleaned: c.cleaned, mailbox: c.mailbox, account: c.account };
    this.write(body.length ? Buffer.concat([c.cleaned.header, body]) : c.cleaned.header);
  }

  /** A write that flushes pauses the stream until it is done: memory stays bounded whatever the client sends. */
  private write(chunk: Buffer): void {
    const flushing = this.writer.write(chunk);
    if (!flushing) return;
    const stream = this.stream;
    stream?.pause();
    flushing.then(
      () => stream?.resume(),
      (err: unknown) => {
        this.failure = err;
        stream?.resume();
      },
    );
  }
}

/**
 * Resolves when DATA has been read to its end; rejects when the client went away first (smtp-server then
 * destroys the stream, with an error or without). stream.finished() does the same for any stream, at the
 * cost of half a dozen listeners and checks per message.
 */
function dataEnd(stream: SMTPServerDataStream): Promise<void> {
  return new Promise((resolve, reject) => {
    let ended = false;
    stream.once('end', () => {
      ended = true;
      resolve();
    });
    stream.once('error', reject);
    stream.once('close', () => {
      if (!ended) reject(new Error('connection closed before the end of DATA'));
    });
  });
}

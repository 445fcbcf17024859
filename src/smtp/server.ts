/** The SMTP front door: accepts a message only once the spool owns it (RFC 5321 section 6.1). */

import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { ListenerConfig, RelayConfig } from '../config/config.js';
import { maxRawForRequest } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import { resolveMailbox } from '../policy/mailbox.js';
import { NetworkList } from '../policy/networks.js';
import { planRecipients } from '../policy/recipients.js';
import { newQueueId } from '../spool/queue-id.js';
import type { Envelope, Spool } from '../spool/spool.js';
import { installEnhancedCodePassthrough } from './enhanced-codes.js';
import { HeaderCollector, readHeaderFacts } from './headers.js';
import { receivedHeader } from './received.js';
import { bccHeader } from '../delivery/compose.js';

/** An SMTP reply chosen by the relay: code plus text that starts with its enhanced status code. */
export class SmtpReply extends Error {
  constructor(
    readonly responseCode: number,
    text: string,
  ) {
    super(text);
  }
}

export interface SmtpEvents {
  /** Called after the spool commit, before the 250 goes out. */
  accepted(env: Envelope): void;
  rejected(reason: string, session: SMTPServerSession): void;
}

const ADDRESS_RE = /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$|^[^\s@<>]+@\[[0-9a-f:.]+\]$/i;

export class SmtpListener {
  readonly server: SMTPServer;
  private readonly networks: NetworkList;
  private closing = false;

  constructor(
    private readonly listener: ListenerConfig,
    private readonly cfg: RelayConfig,
    private readonly spool: Spool,
    private readonly log: Logger,
    private readonly events: SmtpEvents,
  ) {
    installEnhancedCodePassthrough();
    this.networks = new NetworkList(listener.allowedNetworks);
    this.server = new SMTPServer({
      name: cfg.hostname,
      banner: 'smtp-graph-relay ready',
      size: cfg.limits.maxMessageSize,
      rejectOversized: true,
      hideENHANCEDSTATUSCODES: false,
      hidePIPELINING: false,
      hide8BITMIME: false,
      hideSMTPUTF8: false,
      disableReverseLookup: true,
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
      onConnect: (session, cb) => this.onConnect(session, cb),
      onMailFrom: (address, session, cb) => cb(this.checkSender(address.address, session)),
      onRcptTo: (address, session, cb) => cb(this.checkRecipient(address.address, session)),
      onData: (stream, session, cb) => {
        this.ingest(stream, session).then(
          (id) => cb(null, `2.0.0 Ok: queued as ${id}`),
          (err: unknown) => cb(err instanceof SmtpReply ? err : this.internalError(err, session)),
        );
      },
    });
    this.server.on('error', (err) => this.log.error({ err, listener: listener.name }, 'smtp server error'));
  }

  listen(): Promise<{ address: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.listener.port, this.listener.host, () => {
        this.server.off('error', onError);
        const addr = this.server.server.address();
        if (addr && typeof addr === 'object') resolve({ address: addr.address, port: addr.port });
        else reject(new Error('listener has no address'));
      });
    });
  }

  /** Stops accepting; sessions in progress may finish their transaction. */
  close(): Promise<void> {
    this.closing = true;
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private reject(session: SMTPServerSession, reason: string, reply: SmtpReply): SmtpReply {
    this.log.info({ listener: this.listener.name, client: session.remoteAddress, reason, reply: `${reply.responseCode} ${reply.message}` }, 'smtp rejected');
    this.events.rejected(reason, session);
    return reply;
  }

  private onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    if (this.closing) return cb(new SmtpReply(421, '4.3.2 Service shutting down, try again later'));
    if (!this.networks.contains(session.remoteAddress)) {
      return cb(
        this.reject(session, 'network', new SmtpReply(554, `5.7.1 Client host [${session.remoteAddress}] is not allowed to relay: not in the allowed networks of listener "${this.listener.name}"`)),
      );
    }
    cb();
  }

  private checkSender(address: string, session: SMTPServerSession): SmtpReply | null {
    if (address !== '' && !ADDRESS_RE.test(address)) {
      return this.reject(session, 'sender-syntax', new SmtpReply(553, `5.1.7 Sender address <${address}> is not a valid internet address`));
    }
    const res = resolveMailbox(address, this.cfg.mailboxes);
    if (!res.ok) return this.reject(session, 'no-mailbox', new SmtpReply(550, `5.7.1 ${res.reason}`));
    return null;
  }

  private checkRecipient(address: string, session: SMTPServerSession): SmtpReply | null {
    if (!ADDRESS_RE.test(address)) {
      return this.reject(session, 'recipient-syntax', new SmtpReply(553, `5.1.3 Recipient address <${address}> is not a valid internet address`));
    }
    if (session.envelope.rcptTo.length >= this.cfg.limits.maxRecipients) {
      // 452 per RFC 5321 section 4.5.3.1.10: the client sends the rest in another transaction.
      return this.reject(session, 'too-many-recipients', new SmtpReply(452, `4.5.3 Too many recipients: at most ${this.cfg.limits.maxRecipients} per message`));
    }
    return null;
  }

  private internalError(err: unknown, session: SMTPServerSession): SmtpReply {
    this.log.error({ err, client: session.remoteAddress }, 'could not spool message');
    return new SmtpReply(451, '4.3.0 Local error in processing: the message could not be stored, try again later');
  }

  private async ingest(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const id = newQueueId();
    const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const rcptTo = session.envelope.rcptTo.map((r) => r.address);
    const now = new Date();
    const writer = await this.spool.beginMessage(id);
    const headers = new HeaderCollector();
    let failure: unknown = null;
    try {
      const received = receivedHeader({
        helo: session.hostNameAppearsAs,
        clientAddress: session.remoteAddress,
        clientHostname: session.clientHostname,
        byHost: this.cfg.hostname,
        protocol: session.transmissionType || 'ESMTP',
        queueId: id,
        recipients: rcptTo,
        date: now,
      });
      await writer.write(Buffer.from(received, 'latin1'));
    } catch (err) {
      failure = err;
    }
    // The stream is always read to its end: smtp-server answers only then, and a write error must
    // not leave the client's data unread.
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (failure || stream.sizeExceeded) continue;
      headers.push(chunk);
      try {
        await writer.write(chunk);
      } catch (err) {
        failure = err;
      }
    }
    if (failure || stream.sizeExceeded) {
      await writer.abort();
      if (stream.sizeExceeded) {
        throw this.reject(session, 'size', new SmtpReply(552, `5.3.4 Message too big: the limit is ${this.cfg.limits.maxMessageSize} bytes`));
      }
      throw failure;
    }
    try {
      const facts = await readHeaderFacts(headers.block);
      if (facts.receivedCount > this.cfg.limits.maxReceivedHeaders) {
        throw this.reject(session, 'loop', new SmtpReply(554, `5.4.6 Mail loop detected: ${facts.receivedCount} Received headers, the limit is ${this.cfg.limits.maxReceivedHeaders}`));
      }
      const plan = planRecipients(rcptTo, facts.to, facts.cc, facts.bcc);
      if (plan.headerOnly.length > 0 && this.cfg.delivery.headerOnlyRecipients === 'reject') {
        throw this.reject(
          session,
          'header-only-recipients',
          new SmtpReply(550, `5.7.1 The message headers name ${plan.headerOnly.length} recipient(s) that are not envelope recipients (e.g. <${plan.headerOnly[0]}>); Graph would deliver to them too (delivery.headerOnlyRecipients: reject)`),
        );
      }
      const outgoing = writer.bytes + Buffer.byteLength(bccHeader(plan.bcc));
      const maxRaw = maxRawForRequest(this.cfg.graph.maxRequestBytes);
      if (outgoing > maxRaw) {
        throw this.reject(session, 'size', new SmtpReply(552, `5.3.4 Message too big: with its ${rcptTo.length} recipients it exceeds what one Graph request carries (${maxRaw} bytes)`));
      }
      const resolution = resolveMailbox(mailFrom, this.cfg.mailboxes);
      if (!resolution.ok) throw this.reject(session, 'no-mailbox', new SmtpReply(550, `5.7.1 ${resolution.reason}`));
      const env: Envelope = {
        version: 1,
        id,
        mailFrom,
        rcptTo,
        mailbox: resolution.mailbox,
        bcc: plan.bcc,
        clientAddress: session.remoteAddress,
        clientHostname: session.clientHostname,
        helo: session.hostNameAppearsAs,
        listener: this.listener.name,
        receivedAt: now.toISOString(),
        size: writer.bytes,
        attempts: 0,
        nextAttemptAt: now.toISOString(),
        lastError: null,
      };
      await this.spool.commit(writer, env);
      this.log.info(
        {
          qid: id,
          event: 'received',
          mailbox: env.mailbox,
          rule: resolution.rule,
          client: env.clientAddress,
          listener: env.listener,
          from: mailFrom,
          rcpts: rcptTo.length,
          bccAdded: plan.bcc.length,
          headerOnlyRcpts: plan.headerOnly.length,
          size: env.size,
          messageId: facts.messageId,
        },
        'message accepted',
      );
      if (plan.headerOnly.length > 0) {
        this.log.warn({ qid: id, headerOnlyRcpts: plan.headerOnly.length }, 'header recipients that are not envelope recipients will receive the message too (delivery.headerOnlyRecipients: deliver)');
      }
      this.events.accepted(env);
      return id;
    } catch (err) {
      await writer.abort();
      throw err;
    }
  }
}

/** The SMTP front door: accepts a message only once the spool owns it (RFC 5321 section 6.1). */

import { unlink } from 'node:fs/promises';
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerAuthenticationResponse, type SMTPServerDataStream, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { DUMMY_HASH, parsePasswordHash, verifyPassword } from '../config/password-hash.js';
import { checkEnvelopeSender, checkRecipient, isMailbox, mailboxForSession, NetworkRules, userRule, type SenderRule, type SessionMailbox } from '../policy/senders.js';
import { frontDoorShared, type FrontDoorShared } from './shared.js';
import { LineEndingGuard } from './line-endings.js';
import { CertificateWatcher, isLegacyTls, loadTlsOptions } from './tls.js';
import { withProxyV2 } from './proxy-v2.js';
import { setCommandPolicy } from './command-guard.js';
import { clientError } from './client-errors.js';
import type { Socket } from 'node:net';
import type { ListenerConfig, RelayConfig, RewriteFromMode } from '../config/config.js';
import { maxRawForRequest } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import { NetworkList } from '../policy/networks.js';
import { newQueueId } from '../spool/queue-id.js';
import { isoTime } from '../observability/iso-time.js';
import type { Spool } from '../spool/spool.js';
import type { Envelope } from '../spool/envelope.js';
import type { SpoolWriter } from '../spool/writer.js';
import type { MessageData } from '../mime/message-file.js';
import { installReplyPatch } from './replies.js';
import { HeaderCollector } from '../mime/headers.js';
import { cleanupHeaders, type Cleaned, type CleanupSettings } from '../cleanup/cleanup.js';
import { enhancedStatus } from '../graph/classify.js';
import type { SendResult } from '../delivery/senders.js';
import { bccHeader } from '../mime/compose.js';

/** An SMTP reply chosen by the relay: code plus text that starts with its enhanced status code. */
export class SmtpReply extends Error {
  constructor(
    readonly responseCode: number,
    text: string,
  ) {
    super(text);
  }
}

/** The client's connection ended before the end of DATA. */
class ClientGone extends Error {}

export interface SmtpEvents {
  /** Called after the spool commit, before the 250 goes out; `receivedAtMs` is env.receivedAt as a number. */
  accepted(env: Envelope, receivedAtMs: number): void;
  /** `session` is absent for a line refused before the session began (a PROXY header from an untrusted peer). */
  rejected(reason: string, session?: SMTPServerSession): void;
  /** Passthrough listeners: send now and answer with Graph's verdict instead of queueing. */
  passthrough?: (env: Envelope, data: MessageData) => Promise<SendResult>;
  /** A client connected to this listener (before any check), for session metrics. */
  session?(listener: string): void;
  /** A TLS handshake failed (a client's doing: a scanner, a plaintext hello), by OpenSSL's reason. */
  tlsFailure?(listener: string, reason: string): void;
}

interface SessionState {
  counted: boolean;
  messages: number;
  /** The current transaction's mailbox, decided at MAIL FROM (sender and session rights cannot change before DATA). */
  mailbox: SessionMailbox | null;
}

export class SmtpListener {
  readonly server: SMTPServer;
  /** Clients that may relay without AUTH. */
  private readonly networks: NetworkList;
  /** Clients that may connect to authenticate. */
  private readonly authNetworks: NetworkList;
  private readonly networkRules: NetworkRules;
  private readonly shared: FrontDoorShared;
  private readonly certs: CertificateWatcher | null;
  /** Per-session state, by session id; removed in onClose. */
  private readonly sessions = new Map<string, SessionState>();
  private closing = false;
  /** Commands disabled on this listener (STARTTLS without TLS, AUTH without users). */
  private readonly disabled: string[];
  /** AUTH is offered only once the session is encrypted: a STARTTLS listener with AUTH and no allowInsecureAuth. */
  private readonly authAfterTls: boolean;
  /** Errors already logged and counted (smtp-server may report one twice). */
  private readonly reported = new WeakSet<Error>();

  constructor(
    private readonly listener: ListenerConfig,
    private readonly cfg: RelayConfig,
    private readonly spool: Spool,
    private readonly log: Logger,
    private readonly events: SmtpEvents,
  ) {
    installReplyPatch();
    this.networks = new NetworkList(listener.auth === 'required' ? [] : listener.allowedNetworks);
    this.authNetworks = new NetworkList(listener.auth === 'none' ? [] : listener.authNetworks);
    this.networkRules = new NetworkRules(cfg.policy.networks);
    this.shared = frontDoorShared(cfg);
    const index = cfg.listeners.indexOf(listener);
    const tls = listener.tls.mode === 'none' ? {} : loadTlsOptions(listener, index);
    if (isLegacyTls(listener)) {
      this.log.warn({ event: 'legacy-tls', listener: listener.name, minVersion: listener.tls.minVersion }, `listener ${listener.name} accepts ${listener.tls.minVersion}, which is obsolete and weak (RFC 8996); allow it only for devices that cannot do TLSv1.2`);
    }
    const disabled = [];
    if (listener.tls.mode !== 'starttls') disabled.push('STARTTLS');
    // Without TLS, AUTH would send passwords in clear: it is not even offered unless allowInsecureAuth says so.
    if (listener.auth === 'none' || (listener.tls.mode === 'none' && !listener.allowInsecureAuth)) disabled.push('AUTH');
    this.disabled = disabled;
    // On a STARTTLS listener the same holds until the upgrade: a device that sees AUTH in the plaintext EHLO may send its password at once.
    this.authAfterTls = listener.auth !== 'none' && listener.tls.mode === 'starttls' && !listener.allowInsecureAuth;
    const key = `listeners[${index}]`;
    const options: SMTPServerOptions = {
      ...(tls as Partial<SMTPServerOptions>),
      secure: listener.tls.mode === 'implicit',
      allowInsecureAuth: listener.allowInsecureAuth,
      authMethods: ['PLAIN', 'LOGIN'],
      maxClients: cfg.limits.maxConnections,
      socketTimeout: cfg.limits.idleTimeoutMs,
      onAuth: (auth, session, cb) => this.onAuth(auth, session, cb),
      onClose: (session) => this.onClose(session),
      name: cfg.hostname,
      banner: 'smtp-graph-relay ready',
      size: cfg.limits.maxMessageSize,
      rejectOversized: true,
      hideENHANCEDSTATUSCODES: false,
      hidePIPELINING: false,
      hide8BITMIME: false,
      hideSMTPUTF8: false,
      disableReverseLookup: true,
      // Who must authenticate is decided in onMailFrom, which can say which rule applies.
      authOptional: true,
      disabledCommands: disabled,
      logger: false,
      onConnect: (session, cb) => this.onConnect(session, cb),
      onSecure: (_socket, session, cb) => this.onSecure(session, cb),
      onMailFrom: (address, session, cb) => cb(this.checkSender(address.address, session)),
      onRcptTo: (address, session, cb) => cb(this.checkRecipient(address.address, session)),
      onData: (stream, session, cb) => {
        this.ingest(stream, session).then(
          (reply) => cb(null, reply),
          (err: unknown) => cb(err instanceof SmtpReply ? err : err instanceof ClientGone ? this.clientGone(err, session) : this.internalError(err, session)),
        );
      },
    };
    // Not in the typings of smtp-server 3.21, but read by its command parser.
    (options as { maxCommandLength?: number }).maxCommandLength = cfg.limits.maxCommandLength;
    this.server = new SMTPServer(options);
    if (listener.proxyProtocol) {
      // smtp-server's useProxy trusts exact addresses only; the relay's rule is CIDR ranges, so its check is replaced.
      const trusted = new NetworkList(listener.proxyProtocol.trustedProxies);
      const internals = this.server as unknown as { _expectsProxyHeader(s: Socket): boolean; _handleProxy: Parameters<typeof withProxyV2>[0] };
      internals._expectsProxyHeader = (s) => trusted.contains(s.remoteAddress ?? '');
      internals._handleProxy = withProxyV2(internals._handleProxy.bind(this.server), internals._expectsProxyHeader);
    }
    setCommandPolicy(this.server, {
      bareLineEndings: cfg.limits.bareLineEndings,
      proxyRefusal: (client) =>
        listener.proxyProtocol
          ? `5.7.1 PROXY header from [${client}] refused: not in the trusted proxies of listener "${listener.name}" (${key}.proxyProtocol.trustedProxies)`
          : `5.7.1 PROXY header from [${client}] refused: listener "${listener.name}" does not read the PROXY protocol (${key}.proxyProtocol)`,
      authNeedsTls: this.authAfterTls ? this.authNeedsTls() : null,
      refused: (client, reason, reply) => this.refusedLine(client, reason, reply),
    });
    this.certs = listener.tls.mode === 'none' ? null : new CertificateWatcher(listener, index, this.server, log);
    this.server.on('error', (err) => this.onServerError(err));
  }

  /** RFC 4954 section 4: the reply to AUTH on a session that must be encrypted first. */
  private authNeedsTls(): string {
    return `5.7.11 Encryption required for requested authentication mechanism: issue STARTTLS first (listeners[${this.cfg.listeners.indexOf(this.listener)}].allowInsecureAuth is off)`;
  }

  /**
   * Errors of one connection reach here too, and any client can cause them (a plaintext hello on the TLS
   * port, a scanner's hundred cipher probes, a reset): one short info line per client address per
   * limits.clientErrorLogInterval and a metric, not an error with a stack each time.
   */
  private onServerError(err: Error): void {
    // A failed STARTTLS handshake reaches smtp-server as 'error' and '_tlsError' both, with the same object.
    if (this.reported.has(err)) return;
    this.reported.add(err);
    const c = clientError(err);
    if (!c) {
      this.log.error({ event: 'smtp-error', err, listener: this.listener.name }, 'smtp server error');
      return;
    }
    if (c.tls) this.events.tlsFailure?.(this.listener.name, c.reason);
    const line = this.shared.clientErrors.take(c.client);
    if (!line) return;
    const fields = { event: c.tls ? 'tls-handshake-failed' : 'client-error', listener: this.listener.name, client: c.client, reason: c.reason, ...(line.suppressed ? { suppressed: line.suppressed } : {}) };
    this.log.info(fields, c.tls ? `TLS handshake with [${c.client}] failed: ${c.detail}` : `connection from [${c.client}] failed: ${c.detail}`);
  }

  /** A command line refused before smtp-server read it (src/smtp/command-guard.ts). */
  private refusedLine(client: string, reason: string, reply: string): void {
    this.log.info({ event: 'rejected', listener: this.listener.name, client, reason, reply }, 'smtp rejected');
    this.events.rejected(reason);
  }

  listen(): Promise<{ address: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.listener.port, this.listener.host, () => {
        this.server.off('error', onError);
        const addr = this.server.server.address();
        this.certs?.start();
        if (addr && typeof addr === 'object') resolve({ address: addr.address, port: addr.port });
        else reject(new Error('listener has no address'));
      });
    });
  }

  /**
   * Graceful stop: new sessions and new transactions get 421 at once; a transaction already under way
   * (MAIL FROM accepted) may finish, and the listener keeps answering 421 while `drained` (the relay's
   * Graph requests) settles, both within the grace period; then idle sessions get 421 and are closed.
   */
  async close(graceMs = 30_000, drained: Promise<unknown> = Promise.resolve()): Promise<void> {
    this.closing = true;
    this.certs?.stop();
    const deadline = Date.now() + graceMs;
    let settled = false;
    void drained.finally(() => (settled = true));
    while (Date.now() < deadline && (!settled || this.transactionsUnderWay() > 0)) await new Promise((r) => setTimeout(r, 50));
    (this.server.options as { closeTimeout?: number }).closeTimeout = 1;
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private transactionsUnderWay(): number {
    let n = 0;
    for (const c of this.server.connections) if ((c as unknown as { session?: SMTPServerSession }).session?.envelope?.mailFrom) n++;
    return n;
  }

  private reject(session: SMTPServerSession, reason: string, reply: SmtpReply): SmtpReply {
    this.log.info({ event: 'rejected', listener: this.listener.name, client: session.remoteAddress, reason, reply: `${reply.responseCode} ${reply.message}` }, 'smtp rejected');
    this.events.rejected(reason, session);
    return reply;
  }

  private onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    this.events.session?.(this.listener.name);
    if (this.closing) return cb(new SmtpReply(421, '4.3.2 Service shutting down, try again later'));
    const client = session.remoteAddress;
    if (!this.networks.contains(client) && !this.authNetworks.contains(client)) {
      const key = `listeners[${this.cfg.listeners.indexOf(this.listener)}]`;
      const rules = this.listener.auth === 'none' ? `${key}.allowedNetworks` : this.listener.auth === 'required' ? `${key}.authNetworks` : `${key}.allowedNetworks, ${key}.authNetworks`;
      return cb(this.reject(session, 'network', new SmtpReply(554, `5.7.1 Client host [${client}] is not allowed to relay: not in the allowed networks of listener "${this.listener.name}" (${rules})`)));
    }
    const admission = this.shared.connections.admit(client);
    if (!admission.ok) {
      const who = admission.limit === 'maxConnections' ? 'in total' : `from [${client}]`;
      return cb(this.reject(session, 'connection-limit', new SmtpReply(421, `4.7.0 Too many connections ${who}: at most ${admission.max} (limits.${admission.limit}), try again later`)));
    }
    this.sessions.set(session.id, { counted: true, messages: 0, mailbox: null });
    if (this.authAfterTls && !session.secure) session.disabledCommands = [...this.disabled, 'AUTH'];
    cb();
  }

  /** After STARTTLS (or the implicit handshake) the listener's own list applies: AUTH is offered from the next EHLO. */
  private onSecure(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    if (this.authAfterTls) session.disabledCommands = [...this.disabled];
    cb();
  }

  private onClose(session: SMTPServerSession): void {
    const state = this.sessions.get(session.id);
    if (state?.counted) this.shared.connections.release(session.remoteAddress);
    this.sessions.delete(session.id);
  }

  /** The rights of this session: its user's, else the network rule of its address (null: no sender restriction). */
  private ruleFor(session: SMTPServerSession): SenderRule | null {
    if (session.user) return userRule(this.cfg.users, String(session.user));
    return this.networkRules.find(session.remoteAddress);
  }

  private onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void): void {
    const client = session.remoteAddress;
    if (!session.secure && !this.listener.allowInsecureAuth) {
      return cb(this.reject(session, 'auth-insecure', new SmtpReply(538, this.authNeedsTls())));
    }
    // Counted now, not when the verdict comes back: parallel attempts get no more tries than sequential ones.
    const attempt = this.shared.auth.start(client);
    if (!attempt.ok) {
      const text =
        attempt.reason === 'locked'
          ? `4.7.0 Too many failed logins from [${client}]; try again in ${Math.ceil(attempt.ms / 1000)} s (limits.authLockout)`
          : `4.7.0 Too many failed or unfinished logins from [${client}]: at most ${this.cfg.limits.authFailuresBeforeLockout} (limits.authFailuresBeforeLockout); try again later`;
      return cb(this.reject(session, 'auth-locked', new SmtpReply(454, text)));
    }
    const index = this.cfg.users.findIndex((u) => u.username === auth.username);
    const user = index < 0 ? null : this.cfg.users[index]!;
    // An unknown user costs the same scrypt as a wrong password, so timing does not reveal user names.
    verifyPassword(auth.password ?? '', user ? parsePasswordHash(user.passwordHash) : DUMMY_HASH).then(
      (match) => {
        if (match && user) {
          this.shared.auth.success(client);
          this.log.info({ event: 'auth', listener: this.listener.name, client, user: user.username, method: auth.method }, 'smtp authenticated');
          return cb(null, { user: user.username });
        }
        const f = this.shared.auth.failure(client);
        // The user name is logged (it helps find a misconfigured device); the password never is.
        this.log.warn({ event: 'auth-failed', listener: this.listener.name, client, user: String(auth.username ?? '').slice(0, 256), failures: f.failures, locked: f.locked }, 'smtp authentication failed');
        this.events.rejected('auth', session);
        const reply = f.locked
          ? new SmtpReply(454, `4.7.0 Too many failed logins from [${client}]; locked out for ${Math.ceil(this.cfg.limits.authLockoutMs / 1000)} s (limits.authFailuresBeforeLockout)`)
          : new SmtpReply(535, '5.7.8 Authentication credentials invalid');
        const timer = setTimeout(() => cb(reply), f.delayMs);
        timer.unref();
      },
      (err: unknown) => {
        this.shared.auth.release(client);
        this.log.error({ event: 'auth-error', err, client }, 'password check failed');
        cb(new SmtpReply(454, '4.7.0 Temporary authentication failure'));
      },
    );
  }

  private checkSender(address: string, session: SMTPServerSession): SmtpReply | null {
    if (this.closing) return new SmtpReply(421, '4.3.2 Service shutting down, try again later');
    const client = session.remoteAddress;
    if (this.listener.requireTls && !session.secure) {
      return this.reject(session, 'tls-required', new SmtpReply(530, `5.7.0 Must issue a STARTTLS command first (listener "${this.listener.name}" has requireTls)`));
    }
    const state = this.sessions.get(session.id);
    if (state && state.messages >= this.cfg.limits.maxMessagesPerSession) {
      // 421 closes the session; the client reconnects for the rest.
      return this.reject(session, 'session-limit', new SmtpReply(421, `4.7.0 Too many messages in one session: at most ${this.cfg.limits.maxMessagesPerSession} (limits.maxMessagesPerSession), reconnect to send more`));
    }
    if (!session.user && !this.networks.contains(client)) {
      const why = this.listener.auth === 'required' ? `listener "${this.listener.name}" has auth: required` : `client host [${client}] is not in allowedNetworks of listener "${this.listener.name}"`;
      return this.reject(session, 'auth-required', new SmtpReply(530, `5.7.0 Authentication required: ${why}`));
    }
    if (address !== '' && !isMailbox(address)) {
      return this.reject(session, 'sender-syntax', new SmtpReply(553, `5.1.7 Sender address <${address}> is not a valid internet address`));
    }
    const rule = this.ruleFor(session);
    const verdict = checkEnvelopeSender(address, rule);
    if (!verdict.ok) return this.reject(session, 'sender-policy', new SmtpReply(550, `5.7.1 ${verdict.reason}`));
    const mailbox = mailboxForSession(address, rule, this.cfg.mailboxes);
    if (!mailbox.ok) return this.reject(session, 'no-mailbox', new SmtpReply(550, `5.7.1 ${mailbox.reason}`));
    if (state) {
      state.messages++;
      state.mailbox = mailbox;
    }
    return null;
  }

  private checkRecipient(address: string, session: SMTPServerSession): SmtpReply | null {
    if (!isMailbox(address)) {
      return this.reject(session, 'recipient-syntax', new SmtpReply(553, `5.1.3 Recipient address <${address}> is not a valid internet address`));
    }
    if (session.envelope.rcptTo.length >= this.cfg.limits.maxRecipients) {
      // 452 per RFC 5321 section 4.5.3.1.10: the client sends the rest in another transaction.
      return this.reject(session, 'too-many-recipients', new SmtpReply(452, `4.5.3 Too many recipients: at most ${this.cfg.limits.maxRecipients} per message`));
    }
    const verdict = checkRecipient(address, this.ruleFor(session), this.cfg.policy);
    if (!verdict.ok) return this.reject(session, 'recipient-policy', new SmtpReply(550, `5.7.1 ${verdict.reason}`));
    return null;
  }

  /** Not the relay's fault and nothing lost (nothing was acknowledged): a warning, not an error with a stack. */
  private clientGone(err: ClientGone, session: SMTPServerSession): SmtpReply {
    this.log.warn({ event: 'client-gone', client: session.remoteAddress, listener: this.listener.name, reason: err.message }, 'client went away during DATA; nothing was accepted');
    return new SmtpReply(421, '4.4.2 Connection closed during DATA');
  }

  private internalError(err: unknown, session: SMTPServerSession): SmtpReply {
    this.log.error({ event: 'spool-failed', err, client: session.remoteAddress }, 'could not spool message');
    return new SmtpReply(451, '4.3.0 Local error in processing: the message could not be stored, try again later');
  }

  /**
   * DATA: the header section is held until it is whole (at most limits.maxHeaderSize), cleaned up (policy on
   * what Graph will see, From rewrite, Received) and written; the body streams to the spool behind it. The
   * stream is always read to its end: smtp-server answers only then, and a refusal must not leave data unread.
   */
  private async ingest(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const id = newQueueId();
    const nowMs = Date.now();
    const writer = this.spool.beginMessage(id);
    const head = new HeaderCollector(this.cfg.limits.maxHeaderSize);
    const guard = new LineEndingGuard(this.cfg.limits.bareLineEndings, this.cfg.limits.maxLineLength);
    let cleaned: Cleaned | null = null;
    let mailbox: SessionMailbox | null = null;
    let failure: unknown = null;
    const write = (chunk: Buffer): void => {
      const flushing = writer.write(chunk);
      if (!flushing) return;
      stream.pause();
      flushing.then(
        () => stream.resume(),
        (err: unknown) => {
          failure = err;
          stream.resume();
        },
      );
    };
    // The header section is whole: decide, then write it and what followed it in the same chunk.
    const headerDone = (body: Buffer): void => {
      const c = this.cleanup(id, nowMs, head, session);
      if (!c.ok) failure = c.reply;
      else {
        cleaned = c.cleaned;
        mailbox = c.mailbox;
        write(body.length ? Buffer.concat([c.cleaned.header, body]) : c.cleaned.header);
      }
    };
    // 'data' events rather than for await: the async iterator cost a few percent of ingest CPU.
    const ended = dataEnd(stream);
    stream.on('data', (raw: Buffer) => {
      if (failure || stream.sizeExceeded) return;
      const chunk = guard.push(raw);
      if (!chunk) return;
      if (cleaned) return write(chunk);
      const body = head.push(chunk);
      if (body) headerDone(body);
    });
    try {
      await ended;
    } catch (err) {
      // The client went away mid-DATA: nothing was acknowledged, so nothing is kept.
      await writer.abort();
      throw new ClientGone((err as Error).message);
    }
    const tail = failure ? null : guard.end();
    if (tail) {
      if (cleaned) await writer.write(tail)?.catch((err: unknown) => (failure = err));
      else {
        const body = head.push(tail);
        if (body) headerDone(body);
      }
    }
    // A message of header fields only (no empty line): all of it is the header section.
    if (!cleaned && !failure && !stream.sizeExceeded && !guard.violation) {
      head.finish();
      headerDone(Buffer.alloc(0));
    }
    if (!failure && !stream.sizeExceeded && guard.violation) {
      failure = this.reject(session, 'line-endings', new SmtpReply(550, `5.6.0 Message refused: ${guard.violation}`));
    }
    if (failure || stream.sizeExceeded || !cleaned || !mailbox) {
      await writer.abort();
      if (stream.sizeExceeded) {
        throw this.reject(session, 'size', new SmtpReply(552, `5.3.4 Message too big: the limit is ${this.cfg.limits.maxMessageSize} bytes`));
      }
      throw failure ?? new Error('no header section');
    }
    try {
      return await this.accept(id, nowMs, writer, cleaned, mailbox, session);
    } catch (err) {
      await writer.abort();
      throw err;
    }
  }

  /** The transaction's header section, cleaned up; a refusal is logged and counted here. */
  private cleanup(id: string, nowMs: number, head: HeaderCollector, session: SMTPServerSession): { ok: true; cleaned: Cleaned; mailbox: SessionMailbox & { ok: true } } | { ok: false; reply: SmtpReply } {
    const rule = this.ruleFor(session);
    const resolution = this.sessions.get(session.id)?.mailbox ?? mailboxForSession(session.envelope.mailFrom ? session.envelope.mailFrom.address : '', rule, this.cfg.mailboxes);
    if (!resolution.ok) return { ok: false, reply: this.reject(session, 'no-mailbox', new SmtpReply(550, `5.7.1 ${resolution.reason}`)) };
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
        byHost: this.cfg.hostname,
        protocol: session.transmissionType || 'ESMTP',
        queueId: id,
        date: nowMs,
      },
      settings: this.cleanupSettings('rewriteFrom' in resolution ? resolution.rewriteFrom : undefined),
    });
    if (!r.ok) return { ok: false, reply: this.reject(session, r.reason, new SmtpReply(r.code, r.text)) };
    return { ok: true, cleaned: r, mailbox: resolution };
  }

  private cleanupSettings(rewriteFrom: RewriteFromMode | undefined): CleanupSettings {
    const { limits, policy, delivery, mailboxes } = this.cfg;
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
  private async accept(id: string, nowMs: number, writer: SpoolWriter, cleaned: Cleaned, resolution: SessionMailbox & { ok: true }, session: SMTPServerSession): Promise<string> {
    const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const rcptTo = session.envelope.rcptTo.map((r) => r.address);
    const outgoing = writer.bytes + Buffer.byteLength(bccHeader(cleaned.bcc));
    const maxRaw = maxRawForRequest(this.cfg.graph.maxRequestBytes);
    // With the large-message route, size is bounded by limits.maxMessageSize alone (checked while receiving).
    if (!this.cfg.delivery.largeMessages && outgoing > maxRaw) {
      throw this.reject(session, 'size', new SmtpReply(552, `5.3.4 Message too big: with its ${rcptTo.length} recipients it exceeds what one Graph request carries (${maxRaw} bytes)`));
    }
    const at = isoTime(nowMs);
    const env: Envelope = {
      version: 1,
      id,
      mailFrom,
      rcptTo,
      mailbox: resolution.mailbox,
      bcc: cleaned.bcc,
      clientAddress: session.remoteAddress,
      clientHostname: session.clientHostname,
      helo: session.hostNameAppearsAs,
      listener: this.listener.name,
      receivedAt: at,
      size: writer.bytes,
      attempts: 0,
      nextAttemptAt: at,
      lastError: null,
    };
    if (this.events.passthrough) {
      await writer.finish();
      try {
        return await this.passThrough(env, writer.data(), this.events.passthrough);
      } finally {
        await unlink(writer.tmpPath).catch(() => undefined);
      }
    }
    await this.spool.commit(writer, env);
    this.logAccepted(env, resolution.rule, cleaned);
    this.events.accepted(env, nowMs);
    return `2.0.0 Ok: queued as ${id}`;
  }

  private logAccepted(env: Envelope, rule: string, cleaned: Cleaned): void {
    const qid = env.id;
    if (cleaned.from) {
      const f = cleaned.from;
      this.log.info({ qid, event: 'from-rewritten', mailbox: env.mailbox, from: f.originalFrom, sender: f.originalSender, replyTo: f.replyToAdded }, 'From rewritten to the sending mailbox (mailboxes.rewriteFrom)');
    }
    this.log.info(
      {
        qid,
        event: 'received',
        mailbox: env.mailbox,
        rule,
        client: env.clientAddress,
        listener: env.listener,
        from: env.mailFrom,
        rcpts: env.rcptTo.length,
        graphRcpts: cleaned.graphRecipients,
        bccAdded: cleaned.bcc.length,
        headerOnlyRcpts: cleaned.headerOnly.length,
        size: env.size,
        messageId: cleaned.messageId,
      },
      'message accepted',
    );
    if (cleaned.endedAtNonField) this.log.info({ qid, event: 'header-repaired' }, 'a line that is not a header field ended the header section: the empty line was put before it');
    if (cleaned.headerOnly.length > 0) {
      if (cleaned.headerOnlyRemoved) this.log.info({ qid, event: 'header-only-removed', headerOnlyRcpts: cleaned.headerOnly.length }, 'header recipients that are not envelope recipients were removed from To/Cc/Bcc (delivery.headerOnlyRecipients: envelope)');
      else this.log.warn({ qid, event: 'header-only-recipients', headerOnlyRcpts: cleaned.headerOnly.length }, 'header recipients that are not envelope recipients will receive the message too (delivery.headerOnlyRecipients: deliver)');
    }
  }

  /** No spool: Graph's answer becomes the SMTP answer, for callers that retry on their own. */
  private async passThrough(env: Envelope, data: MessageData, send: NonNullable<SmtpEvents['passthrough']>): Promise<string> {
    env.attempts = 1;
    const r = await send(env, data);
    const v = r.verdict;
    const detail = [r.status && `HTTP ${r.status}`, r.code].filter(Boolean).join(' ') || (v.kind === 'delivered' ? '' : v.reason);
    const fields = { qid: env.id, event: 'passthrough', mailbox: env.mailbox, rcpts: env.rcptTo.length, size: env.size, status: r.status, code: r.code, requestId: r.requestId, listener: env.listener };
    if (v.kind === 'delivered') {
      this.log.info({ ...fields, result: 'delivered' }, 'message passed through to Graph');
      return `2.0.0 Ok: sent through Graph as ${env.id}${r.requestId ? ` (request-id ${r.requestId})` : ''}`;
    }
    this.log.warn({ ...fields, result: v.kind, reason: v.reason, error: r.message }, 'Graph did not take a passthrough message');
    if (v.kind === 'transient') throw new SmtpReply(451, `${enhancedStatus(v.reason, 'transient')} Graph did not take the message (${detail}); try again later`);
    throw new SmtpReply(554, `${enhancedStatus(v.reason, 'permanent')} Graph refused the message (${detail})`);
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

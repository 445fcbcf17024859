/** The SMTP front door: one listener, who may connect and authenticate, and the checks at MAIL FROM and RCPT TO. */

import type { SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { SMTPServer } from 'smtp-server';
import type { ListenerConfig, RelayConfig } from '../config/config.js';
import { SmtpReply } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { graphAccounts } from '../config/accounts.js';
import { AccountSelector } from '../policy/accounts.js';
import { NetworkList } from '../policy/networks.js';
import { checkEnvelopeSender, checkRecipient, isMailbox, mailboxForSession, NetworkRules, userRule, type SenderRule } from '../policy/senders.js';
import type { Spool } from '../spool/spool.js';
import { authenticate } from './auth.js';
import { clientError } from './client-errors.js';
import { DataIngest } from './ingest.js';
import { authNeedsTls, type ListenerContext, type SessionState, type SmtpEvents } from './session.js';
import { frontDoorShared, type FrontDoorShared } from './shared.js';
import { closeNow, installReplyPatch, setCommandPolicy, setGreetingDelay, transactionsUnderWay, trustProxies, withMaxCommandLength } from './smtp-server-internals.js';
import { CertificateWatcher, isLegacyTls, loadTlsOptions } from './tls.js';

export type { SmtpEvents } from './session.js';

export class SmtpListener implements ListenerContext {
  readonly server: SMTPServer;
  readonly key: string;
  readonly shared: FrontDoorShared;
  readonly sessions = new Map<string, SessionState>();
  readonly accounts: AccountSelector;
  /** Clients that may relay without AUTH. */
  private readonly networks: NetworkList;
  /** Clients that may connect to authenticate. */
  private readonly authNetworks: NetworkList;
  private readonly networkRules: NetworkRules;
  private readonly certs: CertificateWatcher | null;
  private readonly ingest: DataIngest;
  private closing = false;
  /** Commands disabled on this listener (STARTTLS without TLS, AUTH without users). */
  private readonly disabled: string[] = [];
  /** AUTH is offered only once the session is encrypted: a STARTTLS listener with AUTH and no allowInsecureAuth. */
  private readonly authAfterTls: boolean;
  /** Errors already logged and counted (smtp-server may report one twice). */
  private readonly reported = new WeakSet<Error>();

  constructor(
    readonly listener: ListenerConfig,
    readonly cfg: RelayConfig,
    readonly spool: Spool,
    readonly log: Logger,
    readonly events: SmtpEvents,
  ) {
    installReplyPatch();
    const index = cfg.listeners.indexOf(listener);
    this.key = `listeners[${index}]`;
    this.networks = new NetworkList(listener.auth === 'required' ? [] : listener.allowedNetworks);
    this.authNetworks = new NetworkList(listener.auth === 'none' ? [] : listener.authNetworks);
    this.networkRules = new NetworkRules(cfg.policy.networks);
    this.accounts = new AccountSelector(graphAccounts(cfg), cfg.defaultAccount);
    this.shared = frontDoorShared(cfg);
    this.ingest = new DataIngest(this);
    if (isLegacyTls(listener)) {
      log.warn({ event: 'legacy-tls', listener: listener.name, minVersion: listener.tls.minVersion }, `listener ${listener.name} accepts ${listener.tls.minVersion}, which is obsolete and weak (RFC 8996); allow it only for devices that cannot do TLSv1.2`);
    }
    if (listener.tls.mode !== 'starttls') this.disabled.push('STARTTLS');
    // Without TLS, AUTH would send passwords in clear: it is not even offered unless allowInsecureAuth says so.
    if (listener.auth === 'none' || (listener.tls.mode === 'none' && !listener.allowInsecureAuth)) this.disabled.push('AUTH');
    // On a STARTTLS listener the same holds until the upgrade: a device that sees AUTH in the plaintext EHLO may send its password at once.
    this.authAfterTls = listener.auth !== 'none' && listener.tls.mode === 'starttls' && !listener.allowInsecureAuth;
    this.server = new SMTPServer(withMaxCommandLength(this.options(index), cfg.limits.maxCommandLength));
    setGreetingDelay(this.server, listener.greetingDelayMs);
    if (listener.proxyProtocol) {
      const trusted = new NetworkList(listener.proxyProtocol.trustedProxies);
      trustProxies(this.server, (address) => trusted.contains(address));
    }
    setCommandPolicy(this.server, {
      bareLineEndings: cfg.limits.bareLineEndings,
      proxyRefusal: (client) =>
        listener.proxyProtocol
          ? `5.7.1 PROXY header from [${client}] refused: not in the trusted proxies of listener "${listener.name}" (${this.key}.proxyProtocol.trustedProxies)`
          : `5.7.1 PROXY header from [${client}] refused: listener "${listener.name}" does not read the PROXY protocol (${this.key}.proxyProtocol)`,
      authNeedsTls: this.authAfterTls ? authNeedsTls(this) : null,
      refused: (client, reason, reply) => this.refusedLine(client, reason, reply),
      quit: (session) => this.releaseConnection(session),
    });
    this.certs = listener.tls.mode === 'none' ? null : new CertificateWatcher(listener, index, this.server, log);
    this.server.on('error', (err) => this.onServerError(err));
  }

  private options(index: number): SMTPServerOptions {
    const { listener, cfg } = this;
    const tls = listener.tls.mode === 'none' ? {} : loadTlsOptions(listener, index);
    return {
      ...(tls as Partial<SMTPServerOptions>),
      secure: listener.tls.mode === 'implicit',
      allowInsecureAuth: listener.allowInsecureAuth,
      authMethods: ['PLAIN', 'LOGIN'],
      maxClients: cfg.limits.maxConnections,
      socketTimeout: cfg.limits.idleTimeoutMs,
      name: cfg.hostname,
      banner: 'smtp-graph-relay ready',
      size: cfg.limits.maxMessageSize,
      rejectOversized: true,
      hideENHANCEDSTATUSCODES: false,
      hidePIPELINING: false,
      hide8BITMIME: false,
      hideSMTPUTF8: false,
      disableReverseLookup: true,
      // Who must authenticate is decided at MAIL FROM, which can say which rule applies.
      authOptional: true,
      disabledCommands: this.disabled,
      logger: false,
      onConnect: (session, cb) => this.onConnect(session, cb),
      onSecure: (_socket, session, cb) => this.onSecure(session, cb),
      onAuth: (auth, session, cb) => authenticate(this, auth, session, cb),
      onClose: (session) => this.onClose(session),
      onMailFrom: (address, session, cb) => cb(this.checkSender(address.address, session, declaredSize(address.args))),
      onRcptTo: (address, session, cb) => cb(this.checkRecipient(address.address, session)),
      onData: (stream, session, cb) => {
        this.ingest.run(stream, session).then(
          (reply) => cb(null, reply),
          (err: unknown) => cb(this.ingest.failureReply(err, session)),
        );
      },
    };
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

  /** A command line refused before smtp-server read it (the guard in smtp-server-internals.ts). */
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

  /** SIGHUP: the certificate files are read again now, not at the next check (tls.reloadCheckInterval). */
  reloadCertificates(): void {
    this.certs?.reload();
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
    while (Date.now() < deadline && (!settled || transactionsUnderWay(this.server) > 0)) await new Promise((r) => setTimeout(r, 50));
    return closeNow(this.server);
  }

  reject(session: SMTPServerSession, reason: string, reply: SmtpReply): SmtpReply {
    this.log.info({ event: 'rejected', listener: this.listener.name, client: session.remoteAddress, reason, reply: `${reply.responseCode} ${reply.message}` }, 'smtp rejected');
    this.events.rejected(reason, session, `${reply.responseCode} ${reply.message}`);
    return reply;
  }

  ruleFor(session: SMTPServerSession): SenderRule | null {
    if (session.user) return userRule(this.cfg.users, String(session.user));
    return this.networkRules.find(session.remoteAddress);
  }

  private onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    this.events.session?.(this.listener.name);
    if (this.closing) return cb(new SmtpReply(421, '4.3.2 Service shutting down, try again later'));
    const client = session.remoteAddress;
    if (!this.networks.contains(client) && !this.authNetworks.contains(client)) {
      const k = this.key;
      const rules = this.listener.auth === 'none' ? `${k}.allowedNetworks` : this.listener.auth === 'required' ? `${k}.authNetworks` : `${k}.allowedNetworks, ${k}.authNetworks`;
      return cb(this.reject(session, 'network', new SmtpReply(554, `5.7.1 Client host [${client}] is not allowed to relay: not in the allowed networks of listener "${this.listener.name}" (${rules})`)));
    }
    const admission = this.shared.connections.admit(client);
    if (!admission.ok) {
      const who = admission.limit === 'maxConnections' ? 'in total' : `from [${client}]`;
      return cb(this.reject(session, 'connection-limit', new SmtpReply(421, `4.7.0 Too many connections ${who}: at most ${admission.max} (limits.${admission.limit}), try again later`)));
    }
    this.sessions.set(session.id, { counted: true, messages: 0, mailbox: null, account: null });
    if (this.authAfterTls && !session.secure) session.disabledCommands = [...this.disabled, 'AUTH'];
    cb();
  }

  /** After STARTTLS (or the implicit handshake) the listener's own list applies: AUTH is offered from the next EHLO. */
  private onSecure(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    if (this.authAfterTls) session.disabledCommands = [...this.disabled];
    cb();
  }

  private onClose(session: SMTPServerSession): void {
    this.releaseConnection(session);
    this.sessions.delete(session.id);
  }

  /** At QUIT or close, whichever comes first: the connection stops counting against the limits once. */
  private releaseConnection(session: SMTPServerSession): void {
    const state = this.sessions.get(session.id);
    if (!state?.counted) return;
    state.counted = false;
    this.shared.connections.release(session.remoteAddress);
  }

  private checkSender(address: string, session: SMTPServerSession, size: number | null): SmtpReply | null {
    if (this.closing) return new SmtpReply(421, '4.3.2 Service shutting down, try again later');
    const client = session.remoteAddress;
    if (this.listener.requireTls && !session.secure) {
      return this.reject(session, 'tls-required', new SmtpReply(530, `5.7.0 Must issue a STARTTLS command first (listener "${this.listener.name}" has requireTls)`));
    }
    const state = this.sessions.get(session.id);
    const max = this.cfg.limits.maxMessagesPerSession;
    if (state && state.messages >= max) {
      // 421 closes the session; the client reconnects for the rest.
      return this.reject(session, 'session-limit', new SmtpReply(421, `4.7.0 Too many messages in one session: at most ${max} (limits.maxMessagesPerSession), reconnect to send more`));
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
    const account = this.accounts.choose({ rule, mapping: 'account' in mailbox ? mailbox.account : undefined, listener: this.listener, mailbox: mailbox.mailbox });
    if (!account.ok) return this.reject(session, 'no-account', new SmtpReply(550, `5.7.1 ${account.reason}`));
    // RFC 1870: a declared size the account cannot send is refused now, not after the upload.
    const limit = this.events.sizeLimit?.(account.account);
    if (limit && size !== null && size > limit.bytes) return this.reject(session, 'size', new SmtpReply(552, `5.3.4 Message too big: ${limit.why}`));
    if (state) {
      state.messages++;
      state.mailbox = mailbox;
      state.account = account;
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
}

/** MAIL FROM's SIZE= parameter (RFC 1870), when the client gave one. */
function declaredSize(args: unknown): number | null {
  const v = (args as Record<string, unknown> | false | undefined) ? (args as Record<string, unknown>)['SIZE'] : undefined;
  const n = typeof v === 'string' || typeof v === 'number' ? Number(v) : NaN;
  return Number.isFinite(n) && n >= 0 ? n : null;
}

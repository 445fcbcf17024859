/**
 * Every place where the relay reaches into smtp-server's private internals, and why: nowhere else does.
 * test/smtp/smtp-server-internals.test.ts checks each internal used here, so that an smtp-server upgrade
 * that renames or reshapes one fails the tests instead of the relay.
 */

import type { Socket } from 'node:net';
import type { SMTPServer, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { commandViolation, type CommandPolicy } from './command-lines.js';
import { withProxyV2 } from './proxy-v2.js';

/** The fields of smtp-server's parser and connection that the relay reads or sets (not in its typings). */
interface Parser {
  _dataMode: boolean;
  _remainder: string;
  isClosed: boolean;
  oncommand(command: Buffer, callback?: () => void): void;
  /** Ours: one entry per line end seen and not yet dispatched, true when it was a bare LF. */
  bareLfs?: boolean[];
}
interface Connection {
  _server: SMTPServer;
  _socket?: Socket;
  _parser: Parser | false;
  _upgrading: boolean;
  _ready: boolean;
  _nextHandler: unknown;
  _unrecognizedCommands: number;
  secure: boolean;
  remoteAddress: string;
  session?: SMTPServerSession;
  send(code: number, data: string, context?: unknown): void;
  close(): void;
  _whenWritable(next: () => void): void;
}
interface ServerInternals {
  _closeTimeout: unknown;
  _expectsProxyHeader(socket: Socket): boolean;
  _handleProxy: Parameters<typeof withProxyV2>[0];
}

// --- Replies: SMTPConnection.prototype.send --------------------------------------------------------------

const OWN_CODE = /^[245]\.\d{1,3}\.\d{1,3} /;
/**
 * Replies after which the connection changes hands (220: TLS starts) or ends (221, 421): whatever is
 * batched goes out before them, and they go out at once.
 */
const FLUSH_BEFORE = new Set([220, 221, 421]);
let replyPatched = false;

/**
 * One wrapper around SMTPConnection.prototype.send, the single place where smtp-server writes a reply:
 * - smtp-server derives the enhanced code of an application error from the reply code alone (550 is
 *   always 5.1.1), so "550 5.7.1 relay not permitted" cannot be said. Replies whose text already starts
 *   with an enhanced code are sent without a second one; every other reply is left to smtp-server.
 * - smtp-server writes every reply on its own, so a pipelined MAIL, RCPT, DATA costs three socket writes:
 *   the largest single item of ingest CPU in a profile. Replies produced in one tick are corked together
 *   and leave when the tick ends (RFC 2920 section 3.2 allows it; Postfix's smtpd does the same).
 */
export function installReplyPatch(): void {
  if (replyPatched) return;
  replyPatched = true;
  const proto = SMTPConnection.prototype as unknown as { send(code: number, data: unknown, context?: unknown): void };
  const send = proto.send;
  proto.send = function (this: { _socket?: Socket }, code: number, data: unknown, context?: unknown) {
    batchWrites(this._socket, code);
    return send.call(this, code, data, typeof data === 'string' && OWN_CODE.test(data) ? false : context);
  };
}

function batchWrites(socket: Socket | undefined, code: number): void {
  if (!socket || socket.destroyed) return;
  if (FLUSH_BEFORE.has(code)) {
    if (socket.writableCorked) socket.uncork();
  } else if (!socket.writableCorked) {
    socket.cork();
    process.nextTick(uncork, socket);
  }
}

function uncork(socket: Socket): void {
  if (socket.writableCorked) socket.uncork();
}

// --- Command lines: SMTPStream.prototype._write / startDataMode, SMTPConnection.prototype._createParser ---

const policies = new WeakMap<object, CommandPolicy>();

export function setCommandPolicy(server: SMTPServer, policy: CommandPolicy): void {
  installCommandGuard();
  policies.set(server, policy);
}

let guardInstalled = false;

/**
 * Two wrappers on smtp-server's prototypes. The parser's line splitting (`\r?\n`) is kept; beside it, the
 * guard notes for every line end whether it was a bare LF, and the connection's parser checks each line
 * before smtp-server sees it. Lines received after DATA are message content, which LineEndingGuard reads.
 */
export function installCommandGuard(): void {
  if (guardInstalled) return;
  guardInstalled = true;
  const stream = SMTPStream.prototype as unknown as Parser & { _write(chunk: Buffer, enc: string, next: (err?: Error) => void): void; startDataMode(max?: number): unknown };
  const write = stream._write;
  stream._write = function (this: Parser, chunk, enc, next) {
    if (!this._dataMode && !this.isClosed && chunk && chunk.length) {
      // The same text the parser searches: what it kept of the last chunk, then this one.
      const text = this._remainder + chunk.toString('latin1');
      const ends = (this.bareLfs ??= []);
      for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) ends.push(i === 0 || text.charCodeAt(i - 1) !== 0x0d);
    }
    return write.call(this, chunk, enc, next);
  };
  const startDataMode = stream.startDataMode;
  stream.startDataMode = function (this: Parser, max?: number) {
    // Whatever follows DATA in the chunk is content, not command lines.
    if (this.bareLfs) this.bareLfs.length = 0;
    return startDataMode.call(this, max);
  };

  const conn = SMTPConnection.prototype as unknown as Connection & { _createParser(): Parser };
  const createParser = conn._createParser;
  conn._createParser = function (this: Connection) {
    const parser = createParser.call(this);
    const oncommand = parser.oncommand;
    onLines(parser as unknown as SMTPStream, (command, bareLf, callback) => {
      if (!guard(this, command, bareLf, callback)) oncommand.call(parser, command, callback);
    });
    return parser;
  };
}

/** Hands each line the parser dispatches to `handler`, with whether a bare LF ended it (installCommandGuard must have run). */
export function onLines(parser: SMTPStream, handler: (line: Buffer, bareLf: boolean, callback?: () => void) => void): void {
  const p = parser as unknown as Parser;
  p.oncommand = (command, callback) => handler(command, p.bareLfs?.shift() ?? false, callback);
}

/** True when the guard answered the line itself. */
function guard(c: Connection, line: Buffer, bareLf: boolean, callback: (() => void) | undefined): boolean {
  const policy = policies.get(c._server);
  // During a TLS upgrade every line is plaintext sent after STARTTLS: smtp-server drops it unanswered.
  if (!policy || c._upgrading || (c._server as unknown as ServerInternals)._closeTimeout) return false;
  const next = callback ?? (() => undefined);
  const head = line.subarray(0, 6).toString('latin1').toUpperCase();
  if (!c._nextHandler && head === 'PROXY ') {
    // Usually sent before the greeting, by a load balancer the listener does not trust (or does not expect).
    const reply = policy.proxyRefusal(c.remoteAddress);
    policy.refused(c.remoteAddress, 'proxy-untrusted', reply);
    c.send(554, reply);
    c.close();
    next();
    return true;
  }
  // Before the greeting smtp-server answers anything with 421 (early talker); that stays its call.
  if (!c._ready) return false;
  const violation = commandViolation(line, bareLf, policy.bareLineEndings);
  if (violation) {
    // An AUTH exchange in progress ends here too: its next line would otherwise be taken as a response.
    c._nextHandler = false;
    if (++c._unrecognizedCommands >= 10) {
      c.send(421, '4.7.0 Error: too many unrecognized commands');
      return true;
    }
    const reply = `5.5.2 Syntax error: ${violation}`;
    policy.refused(c.remoteAddress, 'command-syntax', reply);
    c.send(501, reply);
    setImmediate(() => c._whenWritable(next));
    return true;
  }
  if (!c._nextHandler && c.session && /^QUIT\s*$/i.test(line.toString('latin1'))) policy.quit(c.session);
  if (!c._nextHandler && policy.authNeedsTls && !c.secure && /^AUTH(?:\s|$)/i.test(line.subarray(0, 5).toString('latin1'))) {
    policy.refused(c.remoteAddress, 'auth-insecure', policy.authNeedsTls);
    c.send(538, policy.authNeedsTls);
    setImmediate(() => c._whenWritable(next));
    return true;
  }
  return false;
}

// --- The greeting: SMTPConnection.prototype.init -----------------------------------------------------------

const greetingDelays = new WeakMap<object, number>();
let initPatched = false;

/**
 * smtp-server waits a fixed 100 ms before every greeting, to catch spam bots that talk first (421 "You talk
 * too soon"). That pause caps one-connection-per-message clients (printers, scanners, most applications)
 * at sessions / 0.1 s, so it becomes the listener's greetingDelay: init is smtp-server's own, the pause
 * the listener's. Clients that talk before the greeting still get 421 whatever the delay.
 */
export function setGreetingDelay(server: SMTPServer, ms: number): void {
  greetingDelays.set(server, ms);
  if (initPatched) return;
  initPatched = true;
  const conn = SMTPConnection.prototype as unknown as Connection & { init(): void; connectionReady(): void; _setListeners(callback: () => void): void; name: string };
  const init = conn.init;
  conn.init = function (this: typeof conn) {
    const delay = greetingDelays.get(this._server);
    if (delay === undefined) return init.call(this);
    this._setListeners(() => {
      const max = this._server.options.maxClients;
      if (max && this._server.connections.size > max) return this.send(421, `${this.name} Too many connected clients, try again in a moment`, false);
      if (delay === 0) return this.connectionReady();
      setTimeout(() => this.connectionReady(), delay).unref();
    });
  };
}

// --- The server: PROXY, options its typings lack, sessions, closing ---------------------------------------

/**
 * smtp-server's useProxy trusts exact addresses only; the relay's rule is CIDR ranges, so its check is
 * replaced, and PROXY v2 (binary) is read in front of its v1 reader.
 */
export function trustProxies(server: SMTPServer, trusted: (address: string) => boolean): void {
  const s = server as unknown as ServerInternals;
  s._expectsProxyHeader = (socket) => trusted(socket.remoteAddress ?? '');
  s._handleProxy = withProxyV2(s._handleProxy.bind(server), s._expectsProxyHeader);
}

/** maxCommandLength is read by smtp-server's command parser but missing from the typings of 3.21. */
export function withMaxCommandLength(options: SMTPServerOptions, bytes: number): SMTPServerOptions {
  return Object.assign(options, { maxCommandLength: bytes });
}

/** Sessions with a transaction under way (MAIL FROM accepted): a graceful stop lets them finish. */
export function transactionsUnderWay(server: SMTPServer): number {
  let n = 0;
  for (const c of server.connections) if ((c as unknown as Connection).session?.envelope?.mailFrom) n++;
  return n;
}

/** Closes at once: smtp-server waits closeTimeout (30 s by default) for idle sessions, the drain has already waited. */
export function closeNow(server: SMTPServer): Promise<void> {
  (server.options as { closeTimeout?: number }).closeTimeout = 1;
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Command lines as the relay takes them: no CR, LF or NUL inside, no PROXY header from an untrusted peer, AUTH only where it is offered. */

import type { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';

export type BareLineEndings = 'reject' | 'normalize';

/** What one listener decides; the guard itself is shared by every SMTPServer of the process. */
export interface CommandPolicy {
  /** limits.bareLineEndings: a command line that ends in LF alone is refused (reject) or taken (normalize). */
  bareLineEndings: BareLineEndings;
  /** The refusal of a PROXY line from `client`: it reached the command parser, so the peer is not a trusted proxy. */
  proxyRefusal(client: string): string;
  /** The reply to AUTH on an unencrypted session of a listener that offers AUTH only after STARTTLS; null when AUTH needs no TLS there. */
  authNeedsTls: string | null;
  /** Every refusal, for the log and the metrics (`client` is the address the session will have). */
  refused(client: string, reason: string, reply: string): void;
}

/**
 * smtp-server splits commands at CRLF or a bare LF and then at whitespace, which includes CR: a bare CR
 * in `MAIL FROM:<a@b>\rSIZE=1` makes a second parameter, and a NUL rides along in a parameter name.
 * Neither has any place in a command (RFC 5321 section 2.3.8: CR and LF appear only together, as the line
 * end). A line ended by a bare LF is refused under the same setting as bare LFs in DATA.
 */
export function commandViolation(line: Buffer, endedByBareLf: boolean, bareLineEndings: BareLineEndings): string | null {
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === 0x0d) return `bare CR at column ${i + 1} (a command line holds no CR, LF or NUL; RFC 5321 section 2.3.8)`;
    if (c === 0x0a) return `bare LF at column ${i + 1} (a command line holds no CR, LF or NUL; RFC 5321 section 2.3.8)`;
    if (c === 0x00) return `NUL at column ${i + 1} (a command line holds no CR, LF or NUL)`;
  }
  if (endedByBareLf && bareLineEndings === 'reject') return 'command line ended by a bare LF (lines end with CRLF, RFC 5321 section 2.3.8; limits.bareLineEndings: reject)';
  return null;
}

const policies = new WeakMap<object, CommandPolicy>();

export function setCommandPolicy(server: SMTPServer, policy: CommandPolicy): void {
  installCommandGuard();
  policies.set(server, policy);
}

/** The fields of smtp-server's parser and connection that the guard reads (not in its typings). */
interface Parser {
  _dataMode: boolean;
  _remainder: string;
  isClosed: boolean;
  oncommand(command: Buffer, callback?: () => void): void;
  /** One entry per line end seen and not yet dispatched: true when it was a bare LF. */
  bareLfs?: boolean[];
}
interface Connection {
  _server: SMTPServer;
  _parser: Parser | false;
  _upgrading: boolean;
  _ready: boolean;
  _nextHandler: unknown;
  _unrecognizedCommands: number;
  secure: boolean;
  remoteAddress: string;
  send(code: number, data: string): void;
  close(): void;
  _whenWritable(next: () => void): void;
}

let installed = false;

/**
 * Two wrappers on smtp-server's prototypes. The parser's line splitting (`\r?\n`) is kept; beside it, the
 * guard notes for every line end whether it was a bare LF, and the connection's parser checks each line
 * before smtp-server sees it. Lines received after DATA are message content, which LineEndingGuard reads.
 */
export function installCommandGuard(): void {
  if (installed) return;
  installed = true;
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
  if (!policy || c._upgrading || (c._server as unknown as { _closeTimeout: unknown })._closeTimeout) return false;
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
  if (!c._nextHandler && policy.authNeedsTls && !c.secure && /^AUTH(?:\s|$)/i.test(line.subarray(0, 5).toString('latin1'))) {
    policy.refused(c.remoteAddress, 'auth-insecure', policy.authNeedsTls);
    c.send(538, policy.authNeedsTls);
    setImmediate(() => c._whenWritable(next));
    return true;
  }
  return false;
}

/** What a command line may hold, and what a listener decides about the lines it refuses (the guard runs in smtp-server-internals.ts). */

import type { SMTPServerSession } from 'smtp-server';

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
  /**
   * A valid QUIT: the client is done. Its connection stops counting against the connection limits here,
   * before the 221, not when the socket's close is seen: a client that reconnects as soon as it reads the 221
   * would otherwise race its own previous connection and be refused at the per-client limit.
   */
  quit(session: SMTPServerSession): void;
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

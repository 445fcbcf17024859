/** TLS for a listener: certificate and key from files, minimum version, reload when the files are rotated. */

import { constants } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { SMTPServer } from 'smtp-server';
import { type ListenerConfig } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import { ConfigError } from '../errors.js';

export interface TlsOptions {
  key: Buffer;
  cert: Buffer;
  minVersion: ListenerConfig['tls']['minVersion'];
  ciphers: string;
  secureOptions: number;
}

/**
 * Mozilla's "intermediate" profile (server-side TLS guidelines 5.7): AEAD suites only, so no CBC under
 * TLS 1.2 (LUCKY13 and its relatives). Its DHE suites are left out: Node offers them only with a
 * `dhparam`, and every client that speaks TLS 1.2 also speaks ECDHE.
 */
export const INTERMEDIATE_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** TLS 1.0/1.1 clients know only CBC suites with SHA-1, which OpenSSL 3 refuses at its default security level 1. */
const LEGACY_CIPHERS = 'DEFAULT@SECLEVEL=0';

/**
 * A client-initiated renegotiation costs the server a full handshake each time, for a few bytes from the
 * client (CVE-2011-1473); SMTP has no use for it, and TLS 1.3 has none at all. Refused by OpenSSL itself.
 */
const SECURE_OPTIONS = constants.SSL_OP_NO_RENEGOTIATION;

export function isLegacyTls(l: ListenerConfig): boolean {
  return l.tls.mode !== 'none' && (l.tls.minVersion === 'TLSv1' || l.tls.minVersion === 'TLSv1.1');
}

/** Reads the PEM files and proves that they make a context (a key that does not match its certificate fails here). */
export function loadTlsOptions(l: ListenerConfig, index: number): TlsOptions {
  const read = (file: string, name: 'certFile' | 'keyFile'): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`listeners[${index}].tls.${name}`, `cannot read "${file}": ${(err as Error).message}`);
    }
  };
  const opts: TlsOptions = {
    cert: read(l.tls.certFile!, 'certFile'),
    key: read(l.tls.keyFile!, 'keyFile'),
    minVersion: l.tls.minVersion,
    ciphers: l.tls.ciphers ?? (isLegacyTls(l) ? LEGACY_CIPHERS : INTERMEDIATE_CIPHERS),
    secureOptions: SECURE_OPTIONS,
  };
  try {
    createSecureContext(opts);
  } catch (err) {
    throw new ConfigError(`listeners[${index}].tls`, `the certificate and key do not make a usable TLS context: ${(err as Error).message}`);
  }
  return opts;
}

/**
 * cert-manager and friends replace the files (often by swapping a symlink), so they are polled with
 * watchFile, which follows the path rather than an inode. A new pair is used only once it parses and
 * matches; sessions in progress keep their context, new handshakes get the new one.
 */
export class CertificateWatcher {
  private readonly files: string[];
  private reloading = false;

  constructor(
    private readonly l: ListenerConfig,
    private readonly index: number,
    private readonly server: SMTPServer,
    private readonly log: Logger,
  ) {
    this.files = [l.tls.certFile!, l.tls.keyFile!];
  }

  start(): void {
    for (const f of this.files) watchFile(f, { interval: this.l.tls.reloadCheckIntervalMs, persistent: false }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.ino !== prev.ino || cur.size !== prev.size) this.reload();
    });
  }

  stop(): void {
    for (const f of this.files) unwatchFile(f);
  }

  /** Both files usually change together; reading them in the same tick after the last change keeps them a pair. */
  /** Also on SIGHUP (systemctl reload): now, rather than at the next check. */
  reload(): void {
    if (this.reloading) return;
    this.reloading = true;
    setImmediate(() => {
      this.reloading = false;
      try {
        const opts = loadTlsOptions(this.l, this.index);
        this.server.updateSecureContext(opts as unknown as Parameters<SMTPServer['updateSecureContext']>[0]);
        this.log.info({ event: 'tls-reloaded', listener: this.l.name }, `TLS certificate of listener ${this.l.name} reloaded`);
      } catch (err) {
        // Keep serving the old pair: a half-written rotation must not take the listener down.
        this.log.warn({ event: 'tls-reload-failed', listener: this.l.name, err: (err as Error).message }, `TLS certificate of listener ${this.l.name} not reloaded; the previous one stays in use`);
      }
    });
  }
}

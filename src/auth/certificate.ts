/** The certificate credential: the PEM file (key and certificate) read, and read again when it is replaced. */

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { ConfigError } from '../errors.js';

export interface CertificateCredential {
  thumbprintSha256: string;
  privateKey: string;
  x5c: string;
  /** The certificate's notAfter, in ms since the epoch. */
  notAfter: number;
}

/** Reads a PEM file holding the private key and the certificate, as AZURE_CLIENT_CERTIFICATE_PATH does. */
export function readCertificateCredential(file: string, key = 'graph.clientCertificatePath'): CertificateCredential {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(key, `cannot read "${file}": ${(err as Error).message}`);
  }
  const certMatch = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  const keyMatch = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.exec(pem);
  if (!certMatch) throw new ConfigError(key, `"${file}" holds no PEM certificate`);
  if (!keyMatch) throw new ConfigError(key, `"${file}" holds no PEM private key (put the key and the certificate in one file)`);
  let cert: X509Certificate;
  let privateKey: string;
  try {
    cert = new X509Certificate(certMatch[0]);
    privateKey = createPrivateKey(keyMatch[0]).export({ type: 'pkcs8', format: 'pem' }).toString();
  } catch (err) {
    throw new ConfigError(key, `"${file}": ${(err as Error).message}`);
  }
  if (!cert.checkPrivateKey(createPrivateKey(privateKey))) throw new ConfigError(key, `"${file}": the private key is not the certificate's`);
  return {
    thumbprintSha256: cert.fingerprint256.replace(/:/g, '').toLowerCase(),
    privateKey,
    x5c: cert.raw.toString('base64'),
    notAfter: Date.parse(cert.validTo),
  };
}

/**
 * Polls the file as the TLS listeners do (watchFile follows the path, so a swapped symlink counts): a
 * rotated certificate is used without a restart. `changed` runs for each change, and on reload().
 */
export class CredentialFileWatcher {
  private scheduled = false;

  constructor(
    private readonly file: string,
    private readonly intervalMs: number,
    private readonly changed: () => void,
  ) {}

  start(): void {
    watchFile(this.file, { interval: this.intervalMs, persistent: false }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.ino !== prev.ino || cur.size !== prev.size) this.reload();
    });
  }

  stop(): void {
    unwatchFile(this.file);
  }

  /** Also on SIGHUP: now rather than at the next check; a burst of changes is read once. */
  reload(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.changed();
    });
  }
}

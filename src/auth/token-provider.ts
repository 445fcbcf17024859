/** App-only Graph tokens from Entra ID with msal-node (client credentials: secret or certificate). */

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfidentialClientApplication, LogLevel, type Configuration } from '@azure/msal-node';
import type { GraphConfig } from '../config/config.js';
import { ConfigError } from '../config/config.js';
import { isWellKnownAuthorityHost } from '../graph/clouds.js';
import type { Logger } from '../observability/logger.js';

export interface TokenProvider {
  /** A token from msal's cache until near expiry; `fresh` bypasses the cache (after a 401). */
  getToken(fresh?: boolean): Promise<string>;
  /** When a token was last obtained, for readiness. */
  readonly lastSuccessAt: number | null;
}

export class TokenError extends Error {
  constructor(
    message: string,
    readonly errorCode: string,
  ) {
    super(message);
    this.name = 'TokenError';
  }
}

export interface CertificateCredential {
  thumbprintSha256: string;
  privateKey: string;
  x5c: string;
}

/** Reads a PEM file holding the private key and the certificate, as AZURE_CLIENT_CERTIFICATE_PATH does. */
export function readCertificateCredential(file: string): CertificateCredential {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('graph.clientCertificatePath', `cannot read "${file}": ${(err as Error).message}`);
  }
  const certMatch = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  const keyMatch = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.exec(pem);
  if (!certMatch) throw new ConfigError('graph.clientCertificatePath', `"${file}" holds no PEM certificate`);
  if (!keyMatch) throw new ConfigError('graph.clientCertificatePath', `"${file}" holds no PEM private key (put the key and the certificate in one file)`);
  let cert: X509Certificate;
  let privateKey: string;
  try {
    cert = new X509Certificate(certMatch[0]);
    privateKey = createPrivateKey(keyMatch[0]).export({ type: 'pkcs8', format: 'pem' }).toString();
  } catch (err) {
    throw new ConfigError('graph.clientCertificatePath', `"${file}": ${(err as Error).message}`);
  }
  return {
    thumbprintSha256: cert.fingerprint256.replace(/:/g, '').toLowerCase(),
    privateKey,
    x5c: cert.raw.toString('base64'),
  };
}

export class MsalTokenProvider implements TokenProvider {
  private readonly app: ConfidentialClientApplication;
  private readonly scope: string;
  lastSuccessAt: number | null = null;

  constructor(
    cfg: GraphConfig,
    private readonly log: Logger,
    private readonly onResult: (ok: boolean) => void = () => undefined,
  ) {
    if (!cfg.tenantId || !cfg.clientId) throw new ConfigError('graph.tenantId', 'tenant and client id are required');
    const auth: Configuration['auth'] = {
      clientId: cfg.clientId,
      authority: `${cfg.authorityHost}/${cfg.tenantId}`,
      // msal-node knows the public clouds' hosts; any other host (a sovereign proxy, the test emulator)
      // must be trusted explicitly, or msal asks the global cloud's instance discovery about it.
      knownAuthorities: isWellKnownAuthorityHost(cfg.authorityHost) ? [] : [new URL(cfg.authorityHost).host],
    };
    if (cfg.clientCertificatePath) {
      const c = readCertificateCredential(cfg.clientCertificatePath);
      auth.clientCertificate = { thumbprintSha256: c.thumbprintSha256, privateKey: c.privateKey, x5c: c.x5c };
    } else if (cfg.clientSecret) {
      auth.clientSecret = cfg.clientSecret;
    }
    this.app = new ConfidentialClientApplication({
      auth,
      system: {
        loggerOptions: {
          piiLoggingEnabled: false,
          logLevel: LogLevel.Warning,
          loggerCallback: (level, message) => {
            if (level <= LogLevel.Warning) log.warn({ component: 'msal' }, message);
          },
        },
      },
    });
    this.scope = `${cfg.graphUrl}/.default`;
  }

  async getToken(fresh = false): Promise<string> {
    try {
      const res = await this.app.acquireTokenByClientCredential({ scopes: [this.scope], skipCache: fresh });
      if (!res?.accessToken) throw new TokenError('Entra ID returned no access token', 'no_token');
      if (fresh || res.fromCache === false) {
        this.log.info({ event: 'token', fresh, expiresOn: res.expiresOn?.toISOString() }, 'Graph token acquired');
      }
      this.lastSuccessAt = Date.now();
      this.onResult(true);
      return res.accessToken;
    } catch (err) {
      this.onResult(false);
      if (err instanceof TokenError) throw err;
      const e = err as { errorCode?: string; errorMessage?: string; message?: string };
      const msg = (e.errorMessage || e.message || String(err)).split('\n')[0]!;
      this.log.error({ event: 'token-failed', errorCode: e.errorCode }, `could not get a Graph token: ${msg}`);
      throw new TokenError(msg, e.errorCode ?? 'unknown');
    }
  }
}

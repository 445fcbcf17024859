/** Throw-away test PKI (CA, TLS server cert, app client cert) generated with the openssl CLI at test time. */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  caCertPath: string;
  caCertPem: string;
  serverKeyPem: string;
  serverCertPem: string;
  /** One PEM file: PKCS#8 private key followed by the certificate (what the relay is configured with). */
  clientPemPath: string;
  clientKeyPem: string;
  clientCertPem: string;
  clientThumbprintSha256: string;
  clientThumbprintSha1: string;
}

// Our own config file so the result does not depend on the distro's openssl.cnf defaults.
const OPENSSL_CNF = `
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = placeholder
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ v3_client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
`;

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function genKey(cwd: string, file: string): void {
  // genpkey writes PKCS#8 ("BEGIN PRIVATE KEY"), which is what msal-node and node:crypto expect.
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', file], cwd);
}

/** Hex thumbprint of a PEM certificate's DER encoding. */
export function certThumbprint(certPem: string, algorithm: 'sha1' | 'sha256'): string {
  return createHash(algorithm).update(new X509Certificate(certPem).raw).digest('hex');
}

export function makeTestPki(dir: string): TestPki {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'openssl.cnf'), OPENSSL_CNF);
  const cnf = ['-config', 'openssl.cnf'];

  genKey(dir, 'ca.key');
  openssl(['req', ...cnf, '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', '7',
    '-subj', '/CN=smtp-graph-relay test CA', '-extensions', 'v3_ca', '-out', 'ca.crt'], dir);

  genKey(dir, 'server.key');
  openssl(['req', ...cnf, '-new', '-key', 'server.key', '-subj', '/CN=localhost', '-out', 'server.csr'], dir);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial',
    `0x${randomBytes(8).toString('hex')}`,
    '-sha256', '-days', '7', '-extfile', 'openssl.cnf', '-extensions', 'v3_server', '-out', 'server.crt'], dir);

  genKey(dir, 'client.key');
  openssl(['req', ...cnf, '-x509', '-new', '-key', 'client.key', '-sha256', '-days', '7',
    '-subj', '/CN=smtp-graph-relay test app', '-extensions', 'v3_client', '-out', 'client.crt'], dir);

  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  const clientKeyPem = read('client.key');
  const clientCertPem = read('client.crt');
  const clientPemPath = join(dir, 'client.pem');
  writeFileSync(clientPemPath, clientKeyPem + clientCertPem, { mode: 0o600 });

  return {
    dir,
    caCertPath: join(dir, 'ca.crt'),
    caCertPem: read('ca.crt'),
    serverKeyPem: read('server.key'),
    serverCertPem: read('server.crt'),
    clientPemPath,
    clientKeyPem,
    clientCertPem,
    clientThumbprintSha256: certThumbprint(clientCertPem, 'sha256'),
    clientThumbprintSha1: certThumbprint(clientCertPem, 'sha1'),
  };
}

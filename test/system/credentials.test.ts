/**
 * Credential hygiene (issue 20): a certificate credential is read again when its file changes, without a
 * restart (the next token is signed with the new certificate); its expiry, or a client secret's configured
 * one, is the metric relay_credential_expiry_timestamp_seconds that the alerts in deploy/prometheus watch.
 */

import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { certThumbprint, makeTestPki } from '../emulator/pki.js';
import { message, useTestbed } from '../helpers/graph-relay.js';
import type { RelayProcess } from '../helpers/relay-process.js';
import { pySend } from '../helpers/smtp-clients.js';

const dir = mkdtempSync(path.join(tmpdir(), 'credential-'));
/** A second app certificate, valid 30 days: what an administrator rotates to. */
function newCertificate(): { pem: string; certPem: string } {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'next.key', '-out', 'next.crt', '-days', '30', '-subj', '/CN=smtp-graph-relay next'], { cwd: dir, stdio: 'ignore' });
  const certPem = readFileSync(path.join(dir, 'next.crt'), 'utf8');
  return { pem: readFileSync(path.join(dir, 'next.key'), 'utf8') + certPem, certPem };
}
const next = newCertificate();
const pki = makeTestPki(path.join(dir, 'pki'));
// The app has both certificates registered, as during a rotation.
const bed = useTestbed({ pki, clientCertPem: [pki.clientCertPem, next.certPem] });

const notAfter = (certPem: string): number => Math.floor(Date.parse(new X509Certificate(certPem).validTo) / 1000);
/** The certificate a client assertion was signed with: its x5t#S256 header. */
const signedWith = (assertion: string): string => Buffer.from((JSON.parse(Buffer.from(assertion.split('.')[0]!, 'base64url').toString()) as Record<string, string>)['x5t#S256']!, 'base64url').toString('hex');

async function expiryMetric(relay: RelayProcess): Promise<number | undefined> {
  const port = Number((await relay.waitForLog((l) => l.event === 'admin-listening')).port);
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('relay_credential_expiry_timestamp_seconds{account="default"}'));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('credential hygiene', () => {
  it('reloads a rotated certificate file without a restart: the next token is signed with it, and the expiry metric follows', async () => {
    const file = path.join(dir, 'app.pem');
    writeFileSync(file, readFileSync(bed.emu.pki.clientPemPath));
    const relay = await bed.relay({ graph: { clientSecret: null, credential: 'certificate', clientCertificatePath: file, reloadCheckInterval: '100ms' }, admin: { port: 0 } }, {});
    await relay.waitForLog((l) => l.event === 'token');
    expect(await expiryMetric(relay)).toBe(notAfter(bed.emu.pki.clientCertPem));
    expect(signedWith(bed.emu.tokenRequests.find((t) => t.ok)!.assertion!)).toBe(bed.emu.pki.clientThumbprintSha256);

    // A half-written file is not taken: the previous certificate stays in use.
    writeFileSync(path.join(dir, 'partial.pem'), '-----BEGIN CERTIFICATE-----\nMIIB');
    renameSync(path.join(dir, 'partial.pem'), file);
    await relay.waitForLog((l) => l.event === 'credential-reload-failed');
    expect(await expiryMetric(relay)).toBe(notAfter(bed.emu.pki.clientCertPem));

    writeFileSync(path.join(dir, 'rotated.pem'), next.pem);
    renameSync(path.join(dir, 'rotated.pem'), file);
    const reloaded = await relay.waitForLog((l) => l.event === 'credential-reloaded');
    expect(reloaded).toMatchObject({ account: 'default', credential: 'certificate', thumbprint: certThumbprint(next.certPem, 'sha256') });
    await relay.waitForLogs((l) => l.event === 'token', 2);
    const last = bed.emu.tokenRequests.filter((t) => t.ok).at(-1)!;
    expect(signedWith(last.assertion!)).toBe(certThumbprint(next.certPem, 'sha256'));
    expect(await expiryMetric(relay)).toBe(notAfter(next.certPem));
    expect(await pySend(relay.smtpPort, 'printer@contoso.example', ['alice@contoso.example'], message({ From: 'printer@contoso.example', To: 'alice@contoso.example', Subject: 'after rotation' }, 'hi\r\n'))).toMatchObject({ ok: true });
    await bed.emu.waitForSent(1);
  });

  it('SIGHUP reads the certificate file again now, without waiting for the next check', async () => {
    const file = path.join(dir, 'hup.pem');
    writeFileSync(file, readFileSync(bed.emu.pki.clientPemPath));
    const relay = await bed.relay({ graph: { clientSecret: null, credential: 'certificate', clientCertificatePath: file, reloadCheckInterval: '1h' } }, { process: true }); // a real SIGHUP
    await relay.waitForLog((l) => l.event === 'token');
    writeFileSync(path.join(dir, 'hup-next.pem'), next.pem);
    renameSync(path.join(dir, 'hup-next.pem'), file);
    relay.child.kill('SIGHUP');
    expect(await relay.waitForLog((l) => l.event === 'credential-reloaded')).toMatchObject({ thumbprint: certThumbprint(next.certPem, 'sha256') });
  });

  it('exports a client secret’s configured expiry (graph.clientSecretExpires) for the same alert', async () => {
    const relay = await bed.relay({ graph: { clientSecretExpires: '2027-06-30' }, admin: { port: 0 } });
    expect(await expiryMetric(relay)).toBe(Date.parse('2027-06-30') / 1000);
  });
});

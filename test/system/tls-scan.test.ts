/** TLS as a scanner sees it: testssl.sh against a STARTTLS and an implicit-TLS listener with the default settings. */

import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCert } from '../helpers/front-door.js';
import { startRelay, type RelayProcess } from '../helpers/relay-process.js';

interface Finding {
  id: string;
  severity: string;
  finding: string;
}

/** Debian installs testssl.sh as `testssl`; upstream's checkout calls it `testssl.sh`. */
function scannerPath(): string {
  for (const name of ['testssl', 'testssl.sh']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    } catch {
      // try the next name
    }
  }
  // Not a skip: a missing scanner would let a TLS regression through unseen. CI installs it (.ci/run).
  throw new Error('testssl.sh is not installed: run `apt-get install -y testssl.sh` (the Debian package; .ci/run installs it)');
}

/** Protocols (-p), client renegotiation (-R), LUCKY13 (-L) and every cipher per protocol (-E), as flat JSON. */
function scan(scanner: string, port: number, starttls: boolean): Promise<Finding[]> {
  const out = path.join(mkdtempSync(path.join(tmpdir(), 'testssl-')), 'scan.json');
  const args = ['--quiet', '--color', '0', '--warnings', 'off', '-p', '-R', '-L', '-E', '--jsonfile', out, ...(starttls ? ['--starttls', 'smtp'] : []), `127.0.0.1:${port}`];
  return new Promise((resolve, reject) => {
    // testssl's exit code counts findings; the JSON file is the verdict.
    execFile(scanner, args, { maxBuffer: 16 << 20, timeout: 240_000 }, (err, stdout) => {
      try {
        resolve(JSON.parse(readFileSync(out, 'utf8')) as Finding[]);
      } catch (e) {
        reject(new Error(`testssl produced no JSON (${(e as Error).message}); exit ${err?.code}; output:\n${stdout}`));
      }
    });
  });
}

const finding = (findings: Finding[], id: string): string => {
  const f = findings.find((x) => x.id === id);
  if (!f) throw new Error(`testssl reported no ${id}; ids: ${findings.map((x) => x.id).join(' ')}`);
  return f.finding;
};

describe('testssl.sh against the default TLS settings', () => {
  let relay: RelayProcess;
  beforeAll(async () => {
    const cert = makeCert();
    const tls = (mode: string) => ({ mode, certFile: cert.certFile, keyFile: cert.keyFile });
    relay = await startRelay({
      config: {
        delivery: { mode: 'capture' },
        admin: { enabled: false },
        mailboxes: { fallback: 'noreply@contoso.example' },
        listeners: [
          { name: 'starttls', host: '127.0.0.1', port: 0, tls: tls('starttls') },
          { name: 'implicit', host: '127.0.0.1', port: 0, tls: tls('implicit') },
        ],
      },
    });
  });
  afterAll(async () => {
    await relay?.kill();
  });

  it('refuses client renegotiation, offers no CBC suite under TLS 1.2 and no TLS 1.0/1.1, on both modes', { timeout: 300_000 }, async () => {
    // Looked up here, not in beforeAll: a missing scanner must count as a failed test, not a skipped one.
    const scanner = scannerPath();
    const [starttls, implicit] = await Promise.all([scan(scanner, relay.ports.starttls!, true), scan(scanner, relay.ports.implicit!, false)]);
    for (const [mode, findings] of [
      ['starttls', starttls],
      ['implicit', implicit],
    ] as const) {
      const verdicts = Object.fromEntries(['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1', 'TLS1_2', 'TLS1_3', 'secure_client_renego', 'LUCKY13'].map((id) => [id, finding(findings, id)]));
      expect(verdicts, mode).toMatchObject({
        SSLv2: 'not offered',
        SSLv3: 'not offered',
        TLS1: 'not offered',
        TLS1_1: 'not offered',
        TLS1_2: 'offered',
        TLS1_3: expect.stringMatching(/^offered/),
        secure_client_renego: 'not vulnerable',
        LUCKY13: 'not vulnerable',
      });
      // e.g. "TLS 1.2   xc02f   ECDHE-RSA-AES128-GCM-SHA256   ECDH 253   AESGCM   128   TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
      const tls12 = findings.filter((f) => f.id.startsWith('cipher-tls1_2_')).map((f) => f.finding.trim().split(/\s+/).pop()!);
      expect(tls12.length, `${mode}: TLS 1.2 suites`).toBeGreaterThan(0);
      expect(tls12.filter((name) => !/^TLS_ECDHE_(RSA|ECDSA)_WITH_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/.test(name)), `${mode}: TLS 1.2 suites outside Mozilla intermediate`).toEqual([]);
    }
    // The scanner's hundreds of refused handshakes are not errors of the relay.
    expect(relay.logs.filter((l) => l.level === 'error')).toEqual([]);
  });
});

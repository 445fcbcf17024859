/** The command line: capture mode, check-config, start-up errors that name the key, and logs without secrets. */

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { message } from './helpers/graph-relay.js';
import { CLI, startRelay, type RelayProcess } from './helpers/relay-process.js';
import { pySend } from './helpers/smtp-clients.js';

const run = promisify(execFile);
const relays: RelayProcess[] = [];
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.kill()));
});

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env } }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
}

function configFile(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'cli-'));
  const f = path.join(dir, 'relay.yaml');
  writeFileSync(f, text);
  return f;
}

describe('command line', () => {
  it('capture mode writes the exact MIME and a description of the Graph request', async () => {
    const r = await startRelay({ config: { delivery: { mode: 'capture' }, mailboxes: { fallback: 'scans@contoso.example', senderDomains: ['contoso.example'] } } });
    relays.push(r);
    const msg = message({ From: 'scanner@printer.local', To: 'alice@contoso.example', Subject: 'Scan 1' }, 'PDF would be here\r\n');
    expect((await pySend(r.smtpPort, 'scanner@printer.local', ['alice@contoso.example', 'bob@contoso.example'], msg)).ok).toBe(true);
    const done = await r.waitForLog((l) => l.event === 'delivered');
    expect(done.route).toBe('capture');
    const files = readdirSync(r.captureDir).sort();
    expect(files).toEqual([`${done.qid}.eml`, `${done.qid}.json`]);
    const eml = readFileSync(path.join(r.captureDir, `${done.qid}.eml`));
    expect(eml.toString()).toMatch(/^Bcc: bob@contoso\.example\r\nReceived: from pytest\.local/);
    // The printer's From becomes the mailbox Graph sends as (Exchange refuses any other); the rest is as sent.
    expect(eml.toString()).toContain('\r\nFrom: "scanner at printer.local" <scans@contoso.example>\r\nX-Original-From: scanner@printer.local\r\nReply-To: scanner@printer.local\r\nTo: alice@contoso.example\r\nSubject: Scan 1\r\n\r\nPDF would be here\r\n');
    expect(eml.toString().endsWith('\r\n\r\nPDF would be here\r\n')).toBe(true);
    const json = JSON.parse(readFileSync(path.join(r.captureDir, `${done.qid}.json`), 'utf8'));
    expect(json).toMatchObject({
      queueId: done.qid,
      mailbox: 'scans@contoso.example',
      request: { method: 'POST', url: 'https://graph.microsoft.com/v1.0/users/scans%40contoso.example/sendMail', headers: { 'Content-Type': 'text/plain', 'Content-Length': Math.ceil(eml.length / 3) * 4 } },
      envelope: { mailFrom: 'scanner@printer.local', rcptTo: ['alice@contoso.example', 'bob@contoso.example'] },
      bccAdded: ['bob@contoso.example'],
    });
  });

  it('check-config prints the effective configuration with secrets redacted', async () => {
    const f = configFile('graph:\n  cloud: usgov\nmailboxes:\n  senderDomains: [contoso.example]\n');
    const res = await cli(['check-config', '--config', f], { AZURE_TENANT_ID: 'tid', AZURE_CLIENT_ID: 'cid', AZURE_CLIENT_SECRET: 'very-secret-value' });
    expect(res.code).toBe(0);
    const cfg = JSON.parse(res.stdout);
    expect(cfg.graph).toMatchObject({ cloud: 'usgov', graphUrl: 'https://graph.microsoft.us', authorityHost: 'https://login.microsoftonline.us', tenantId: 'tid', clientSecret: '[redacted]' });
    expect(res.stdout).not.toContain('very-secret-value');
  });

  it('stops at start with exit code 2 and a message naming the key at fault', async () => {
    const bad = await cli(['run', '--config', configFile('listeners:\n  - port: 99999\n')], {});
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/configuration error: listeners\[0\]\.port: must be a whole number from 0 to 65535 \(got 99999\)/);
    const noCreds = await cli(['run', '--config', configFile('hostname: relay.test\n')], {});
    expect(noCreds.code).toBe(2);
    expect(noCreds.stderr).toMatch(/configuration error: graph\.\w+: .*required|configuration error: graph\.\w+: .*credential/);
    const missing = await cli(['run', '--config', '/nonexistent/relay.yaml'], {});
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read "/nonexistent/relay.yaml"');
  });

  it('says clearly when the SMTP port is taken', async () => {
    const first = await startRelay({ config: { delivery: { mode: 'capture' }, mailboxes: { fallback: 'scans@contoso.example' } } });
    relays.push(first);
    const f = configFile(`delivery:\n  mode: capture\nspool:\n  directory: ${path.join(path.dirname(first.configPath), 'spool2')}\nadmin:\n  port: 0\nmailboxes:\n  fallback: scans@contoso.example\nlisteners:\n  - port: ${first.smtpPort}\n`);
    const res = await cli(['run', '--config', f], {});
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/cannot listen: .*EADDRINUSE/);
  });

  it('refuses to share a spool with a running relay', async () => {
    const first = await startRelay({ config: { delivery: { mode: 'capture' }, mailboxes: { fallback: 'scans@contoso.example' } } });
    relays.push(first);
    const f = configFile(`delivery:\n  mode: capture\nspool:\n  directory: ${first.spoolDir}\nadmin:\n  port: 0\nmailboxes:\n  fallback: scans@contoso.example\nlisteners:\n  - port: 0\n`);
    const res = await cli(['run', '--config', f], {});
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`the spool is in use by another relay (pid ${first.child.pid}`);
  });
});

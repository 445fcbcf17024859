/** The command line: capture mode, check-config, start-up errors that name the key, and logs without secrets. */

import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { message } from '../helpers/graph-relay.js';
import { CLI, REPO, startRelay, type RelayProcess } from '../helpers/relay-process.js';
import { pySend } from '../helpers/smtp-clients.js';

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
    // A message without a Message-ID gets one at the end of its header section, as Postfix's cleanup adds it.
    expect(eml.toString()).toContain(`\r\nFrom: "scanner at printer.local" <scans@contoso.example>\r\nX-Original-From: scanner@printer.local\r\nReply-To: scanner@printer.local\r\nTo: alice@contoso.example\r\nSubject: Scan 1\r\nMessage-ID: <${done.qid}.`);
    expect(eml.toString()).toMatch(/\r\nMessage-ID: <\w{12}\.\d+@[^>]+>\r\n\r\nPDF would be here\r\n$/);
    expect(eml.toString().endsWith('\r\n\r\nPDF would be here\r\n')).toBe(true);
    const json = JSON.parse(readFileSync(path.join(r.captureDir, `${done.qid}.json`), 'utf8'));
    expect(json).toMatchObject({
      queueId: done.qid,
      mailbox: 'scans@contoso.example',
      request: { method: 'POST', url: 'https://graph.microsoft.com/v1.0/users/scans%40contoso.example/sendMail', headers: { 'Content-Type': 'text/plain', 'Content-Length': Math.ceil(eml.length / 3) * 4 } },
      envelope: { mailFrom: 'scanner@printer.local', rcptTo: ['alice@contoso.example', 'bob@contoso.example'] },
      bccAdded: ['bob@contoso.example'],
    });
    // A secret that is not set is logged as not set, not as "[redacted]".
    const logged = r.logs.find((l) => l.event === 'config') as { config: { graph: { clientSecret: unknown } } };
    expect(logged.config.graph.clientSecret).toBeNull();
  });

  it('check-config prints the effective configuration with secrets redacted', async () => {
    const f = configFile('graph:\n  cloud: usgov\nmailboxes:\n  senderDomains: [contoso.example]\n');
    const res = await cli(['check-config', '--config', f], { AZURE_TENANT_ID: 'contoso.onmicrosoft.com', AZURE_CLIENT_ID: '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f', AZURE_CLIENT_SECRET: 'very-secret-value' });
    expect(res.code).toBe(0);
    const cfg = JSON.parse(res.stdout);
    expect(cfg.graph).toMatchObject({ cloud: 'usgov', graphUrl: 'https://graph.microsoft.us', authorityHost: 'https://login.microsoftonline.us', tenantId: 'contoso.onmicrosoft.com', clientSecret: '[redacted]' });
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

  it('--help and --version work anywhere, with no configuration or credentials', async () => {
    for (const args of [['--help'], ['-h'], ['help'], [], ['run', '--help'], ['queue', 'list', '-h'], ['check-config', '--config', '/nonexistent', '--help']]) {
      const res = await cli(args);
      expect(res.code, args.join(' ')).toBe(0);
      expect(res.stdout).toMatch(/^usage: smtp-graph-relay <command>/);
    }
    const pkg = JSON.parse(readFileSync(path.join(path.dirname(CLI), '../package.json'), 'utf8')) as { version: string };
    for (const args of [['--version'], ['-V'], ['run', '--version']]) expect((await cli(args)).stdout).toBe(`smtp-graph-relay ${pkg.version}\n`);
  });

  it('an unknown command, flag or argument is one line and the usage, exit 2 (never a stack trace)', async () => {
    const cases: [string[], string][] = [
      [['frobnicate'], 'unknown command "frobnicate"'],
      [['run', '--bogus'], 'unknown option "--bogus" for run'],
      [['queue', 'list', '--spool', 'x'], 'unknown option "--spool" for queue'],
      [['check-config', 'extra'], 'check-config takes no arguments (got "extra")'],
      [['queue', 'frob', '-c', configFile('mailboxes: {fallback: a@b.example}\n')], 'unknown queue command "frob"'],
    ];
    for (const [args, line] of cases) {
      const res = await cli(args);
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.stderr.split('\n')[0]).toBe(`smtp-graph-relay: ${line}`);
      expect(res.stderr).toContain('usage: smtp-graph-relay');
      expect(res.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('queue commands exit 1 when they did nothing, and name the spool they looked for', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cli-q-'));
    const f = configFile(`spool:\n  directory: ${dir}/spool\nmailboxes:\n  fallback: a@b.example\n`);
    const none = await cli(['queue', 'list', '-c', f]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`no spool at ${dir}/spool (spool.directory, or RELAY_SPOOL_DIR): give the relay's configuration with --config FILE or RELAY_CONFIG`);
    // The same configuration from RELAY_CONFIG, once the spool exists.
    const r = await startRelay({ config: { delivery: { mode: 'capture' }, mailboxes: { fallback: 'scans@contoso.example' } }, dir });
    relays.push(r);
    await r.stop();
    const list = await cli(['queue', 'list'], { RELAY_CONFIG: r.configPath });
    expect(list).toMatchObject({ code: 0 });
    expect(list.stdout).toContain('-- 0 queued, 0 dead');
    for (const args of [['queue', 'delete', 'NOPE'], ['queue', 'requeue', 'NOPE'], ['queue', 'retry', '--all']]) {
      const res = await cli([...args, '-c', r.configPath]);
      expect(res.code, args.join(' ')).toBe(1);
      expect(res.stdout).toMatch(/^0 message\(s\)/);
    }
  });

  it('check-config validates without credentials (a warning), and --strict makes a missing one an error', async () => {
    const f = configFile('mailboxes:\n  senderDomains: [contoso.example]\n');
    const warn = await cli(['check-config', '-c', f]);
    expect(warn.code).toBe(0);
    expect(warn.stderr).toMatch(/^smtp-graph-relay: warning: graph\.\w+: .*--strict makes this an error/);
    expect(JSON.parse(warn.stdout).mailboxes.senderDomains).toEqual(['contoso.example']);
    const strict = await cli(['check-config', '--strict', '-c', f]);
    expect(strict.code).toBe(2);
    expect(strict.stderr).toMatch(/^smtp-graph-relay: configuration error: graph\.\w+: /);
    // Everything else is still checked.
    expect((await cli(['check-config', '-c', configFile('limits:\n  maxRecipients: 0\n')])).stderr).toMatch(/configuration error: limits\.maxRecipients/);
  });

  it('capture mode does not start with a capture folder it cannot write (RELAY_CAPTURE_DIR)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cli-cap-'));
    writeFileSync(path.join(dir, 'a-file'), 'x');
    const f = configFile(`delivery:\n  mode: capture\nspool:\n  directory: ${dir}/spool\nadmin:\n  enabled: false\nmailboxes:\n  fallback: a@b.example\nlisteners:\n  - port: 0\n`);
    const res = await cli(['run', '-c', f], { RELAY_CAPTURE_DIR: path.join(dir, 'a-file', 'capture') });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`failed to start: the capture folder ${dir}/a-file/capture is not writable (ENOTDIR): set delivery.captureDirectory or RELAY_CAPTURE_DIR`);
  });

  it('npm start hands SIGTERM to the relay: it drains and exits, nothing is left running', async () => {
    // The start script as shipped, minus its build step, in a folder of its own (so no build rewrites dist/ under other tests).
    const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    const start = pkg.scripts['start']!;
    expect(start).toMatch(/^npm run build && exec node /);
    const dir = mkdtempSync(path.join(tmpdir(), 'cli-npm-'));
    for (const d of ['dist', 'config', 'node_modules']) symlinkSync(path.join(REPO, d), path.join(dir, d));
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'x', version: '0.0.0', scripts: { start: start.replace(/^npm run build && /, '') } }));
    const child = spawn('npm', ['start', '--silent'], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', HOME: dir, RELAY_SPOOL_DIR: path.join(dir, 'spool'), RELAY_CAPTURE_DIR: path.join(dir, 'capture'), RELAY_SMTP_PORT: '0', RELAY_ADMIN_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: Record<string, unknown>[] = [];
    const started = new Promise<number>((resolve) =>
      createInterface({ input: child.stdout! }).on('line', (l) => {
        const j = JSON.parse(l) as Record<string, unknown>;
        lines.push(j);
        // The relay's own pid is in its spool lock.
        if (j['event'] === 'started') resolve(Number(readFileSync(path.join(dir, 'spool', 'relay.lock'), 'utf8').trim().split(/\s+/)[0]));
      }),
    );
    const pid = await started;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM'); // to npm, as a service manager or a terminal would
    expect(await exited).toBe(0);
    expect(lines.some((l) => l['event'] === 'stopped')).toBe(true);
    expect(() => process.kill(pid, 0)).toThrow(); // the relay itself is gone, not orphaned
  });
});

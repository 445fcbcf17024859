/** `smtp-graph-relay test-send`: one message through the configured route, each step with its result, and the fix for each known failure. */

import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startEmulator, type Emulator } from '../emulator/emulator.js';
import { relayConfig } from '../helpers/graph-relay.js';
import { CLI } from '../helpers/relay-process.js';

let emu: Emulator;
beforeAll(async () => {
  emu = await startEmulator();
});
afterAll(async () => {
  await emu.close();
});
afterEach(() => emu.reset());

function testSend(args: string[], graph: Record<string, unknown> = {}): Promise<{ code: number; lines: string[] }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'test-send-'));
  const file = path.join(dir, 'relay.yaml');
  writeFileSync(file, stringify(relayConfig(emu, { graph, mailboxes: { fallback: 'scans@contoso.example' } })));
  return new Promise((resolve) =>
    execFile(process.execPath, [CLI, 'test-send', '-c', file, ...args], { env: { PATH: process.env.PATH ?? '', NODE_EXTRA_CA_CERTS: emu.caCertPath } }, (err, stdout) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, lines: stdout.trimEnd().split('\n') }),
    ),
  );
}

describe('test-send', () => {
  it('prints the token with its roles and what they allow, the mailbox, and Graph 202 with the request-id; the message reaches Graph', async () => {
    const r = await testSend(['--to', 'alice@contoso.example']);
    expect(r.code).toBe(0);
    expect(r.lines[0]).toMatch(/^token ✓ \(account default, 127\.0\.0\.1:\d+, credential secret; roles: Mail\.Send, Mail\.ReadWrite\)$/);
    expect(r.lines[1]).toBe('permissions ✓ account default: token roles Mail.Send, Mail.ReadWrite: every route is allowed');
    expect(r.lines[2]).toBe('mailbox scans@contoso.example (from the configuration; --from names another)');
    const [sent] = emu.sent;
    expect(r.lines[3]).toBe(`MIME sendMail 202 ✓ (request-id ${sent!.requestId})`);
    expect(sent).toMatchObject({ upn: 'scans@contoso.example', recipients: ['alice@contoso.example'] });
  });

  it('says when the token has no roles (RBAC for Applications) and sends as --from', async () => {
    emu.setRoles([]);
    const r = await testSend(['--to', 'alice@contoso.example', '--from', 'other@contoso.example']);
    expect(r.code).toBe(0);
    expect(r.lines[0]).toMatch(/roles: none — with RBAC for Applications the grant is in Exchange/);
    expect(r.lines[1]).toMatch(/^permissions ✓ account default: the token carries no roles .*nothing is refused for it$/);
    expect(r.lines[2]).toBe('mailbox other@contoso.example');
  });

  it('Mail.Send only: says which messages the relay will refuse, and still sends', async () => {
    emu.setRoles(['Mail.Send']);
    const r = await testSend(['--to', 'alice@contoso.example']);
    expect(r.code).toBe(0);
    expect(r.lines[1]).toBe('permissions ✗ account default: Mail.ReadWrite missing (token roles: Mail.Send): messages over 3000000 bytes (one Graph request) are refused at MAIL FROM SIZE= and at the end of DATA');
    expect(r.lines[3]).toMatch(/^MIME sendMail 202 ✓/);
  });

  it('--account names an account that does not exist: exit 2, listing those that do', async () => {
    const r = await testSend(['--to', 'alice@contoso.example', '--account', 'nope']);
    expect(r.code).toBe(2);
    expect(r.lines[0]).toBe('account ✗ no Graph account "nope" (accounts: default)');
  });

  it('a wrong client secret: token ✗ with Entra ID\'s AADSTS code and the fix', async () => {
    const r = await testSend(['--to', 'alice@contoso.example'], { clientSecret: 'wrong-secret' });
    expect(r.code).toBe(1);
    expect(r.lines[0]).toMatch(/^token ✗ Entra ID \(127\.0\.0\.1:\d+\) refused the token request: invalid_client: AADSTS7000215: Invalid client secret provided/);
    expect(r.lines[1]).toBe("  fix: the client secret is wrong: use the secret's Value (shown once when it was created), not its Secret ID");
  });

  it('an unknown app: AADSTS700016 and what to check', async () => {
    const r = await testSend(['--to', 'alice@contoso.example'], { clientId: '11111111-2222-3333-4444-555555555555' });
    expect(r.code).toBe(1);
    expect(r.lines[0]).toMatch(/AADSTS700016/);
    expect(r.lines[1]).toMatch(/^ {2}fix: no application with this client id in this tenant/);
  });

  it.each([
    [403, 'ErrorAccessDenied', /Test-ServicePrincipalAuthorization/],
    [404, 'ErrorInvalidUser', /no such mailbox in this tenant/],
    [400, 'MailboxNotEnabledForRESTAPI', /not in Exchange Online/],
  ])('Graph %s %s: ✗ with the request-id and the fix', async (status, code, fix) => {
    emu.script('scans@contoso.example', [{ op: 'sendMail', status, code }]);
    const r = await testSend(['--to', 'alice@contoso.example']);
    expect(r.code).toBe(1);
    expect(r.lines[3]).toMatch(new RegExp(`^MIME sendMail ${status} ${code} ✗ \\(request-id [0-9a-f-]{36}\\): `));
    expect(r.lines[4]).toMatch(fix);
  });

  it('without --to: one line and the usage, exit 2', async () => {
    const r = await new Promise<number>((resolve) => execFile(process.execPath, [CLI, 'test-send'], (err) => resolve(err ? ((err as { code?: number }).code ?? 1) : 0)));
    expect(r).toBe(2);
  });
});

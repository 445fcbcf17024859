/**
 * Least privilege checked at start (issue 20): the relay reads its token's roles, says what they allow,
 * and does exactly that. A Mail.Send-only deployment refuses messages over one Graph request at MAIL FROM
 * SIZE= and at the end of DATA (552 5.3.4) and sends the rest; a token without roles (RBAC for
 * Applications) refuses nothing; roles that change are checked again.
 */

import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { message, relayConfig, useTestbed } from '../helpers/graph-relay.js';
import { CLI, type RelayProcess } from '../helpers/relay-process.js';
import { pySend, RawSmtp } from '../helpers/smtp-clients.js';

// Tokens shorter-lived than the relay's renewal margin: every attempt gets a new one, with the roles in force then.
const bed = useTestbed({ roles: ['Mail.Send'], tokenLifetimeSec: 30 });
const FROM = 'printer@contoso.example';
const TO = 'alice@contoso.example';
/** Over one Graph request (3,000,000 bytes before base64), well under limits.maxMessageSize. */
const big = (): Buffer => message({ From: FROM, To: TO, Subject: 'scan' }, `${'x'.repeat(998)}\r\n`.repeat(3500));

async function started(relay: RelayProcess): Promise<string> {
  return String((await relay.waitForLog((l) => l.event === 'permissions')).msg);
}

/** MAIL FROM without SIZE=, the whole message, and the reply to its end. */
async function sendWithoutSize(port: number, bytes: Buffer): Promise<{ code: number; text: string }> {
  const c = await RawSmtp.connect(port);
  try {
    await c.reply();
    await c.cmd('EHLO client.example');
    expect((await c.cmd(`MAIL FROM:<${FROM}>`)).code).toBe(250);
    expect((await c.cmd(`RCPT TO:<${TO}>`)).code).toBe(250);
    expect((await c.cmd('DATA')).code).toBe(354);
    c.write(Buffer.concat([bytes, Buffer.from('.\r\n')]));
    return await c.reply();
  } finally {
    c.close();
  }
}

describe('permissions from the token', () => {
  it('Mail.Send only: says so at start, refuses a message over one request at MAIL FROM SIZE= and at the end of DATA, sends the rest', async () => {
    const relay = await bed.relay();
    expect(await started(relay)).toBe('account default: Mail.ReadWrite missing (token roles: Mail.Send): messages over 3000000 bytes (one Graph request) are refused at MAIL FROM SIZE= and at the end of DATA');
    // smtplib declares SIZE= when the server offers it.
    const declared = await pySend(relay.smtpPort, FROM, [TO], big());
    expect(declared).toMatchObject({ ok: false, code: 552 });
    expect(declared.message).toMatch(/^5\.3\.4 Message too big: account "default" has no Mail\.ReadWrite permission \(its token's roles: Mail\.Send\), so it sends at most 3000000 bytes/);
    const undeclared = await sendWithoutSize(relay.smtpPort, big());
    expect(undeclared.code).toBe(552);
    expect(undeclared.text).toMatch(/5\.3\.4 Message too big: account "default" has no Mail\.ReadWrite permission/);
    expect(await pySend(relay.smtpPort, FROM, [TO], message({ From: FROM, To: TO, Subject: 'small' }, 'hello\r\n'))).toMatchObject({ ok: true });
    await bed.emu.waitForSent(1);
    expect(bed.emu.requests.map((r) => r.op)).toEqual(['sendMail']); // no draft was ever tried
  });

  it('a token without roles (RBAC for Applications): says it cannot know, refuses nothing, and the large route runs', async () => {
    bed.emu.setRoles([]);
    const relay = await bed.relay();
    expect(await started(relay)).toMatch(/^account default: the token carries no roles .*nothing is refused for it$/);
    expect(await pySend(relay.smtpPort, FROM, [TO], big())).toMatchObject({ ok: true });
    await bed.emu.waitForSent(1);
    expect(bed.emu.sentDrafts).toHaveLength(1);
  });

  it('roles that change are checked again: a queued message the account can no longer send is refused with the reason, not tried at Graph', async () => {
    bed.emu.setRoles(['Mail.Send', 'Mail.ReadWrite']);
    bed.emu.setDown('503');
    const relay = await bed.relay();
    expect(await started(relay)).toMatch(/every route is allowed/);
    expect(await pySend(relay.smtpPort, FROM, [TO], big())).toMatchObject({ ok: true });
    await relay.waitForLog((l) => l.event === 'deferred');
    bed.emu.setRoles(['Mail.Send']);
    // The retries while Graph is down get new tokens: the relay hears of the change before Graph is back.
    await relay.waitForLogs((l) => l.event === 'permissions', 2);
    bed.emu.setDown(false);
    const dead = await relay.waitForLog((l) => l.event === 'dead-lettered' || l.event === 'bounced');
    expect(dead).toMatchObject({ reason: 'message-too-big', account: 'default' });
    expect(String(dead['error'])).toMatch(/account "default" has no Mail\.ReadWrite permission, which the large-message route needs/);
    expect(relay.logs.filter((l) => l.event === 'permissions')).toHaveLength(2);
    // Drafts were tried only while Graph was down (the attempts before the roles changed); none after.
    const drafts = bed.emu.requests.filter((r) => r.op === 'createDraft').map((r) => r.status);
    expect(drafts.length).toBeGreaterThan(0);
    expect(drafts.filter((status) => status !== 503)).toEqual([]);
  });

  it('check-config --strict gets a token for every account and prints its roles and what they allow', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'strict-'));
    const file = path.join(dir, 'relay.yaml');
    writeFileSync(file, stringify(relayConfig(bed.emu)));
    const r = await new Promise<{ code: number; stderr: string; stdout: string }>((resolve) =>
      execFile(process.execPath, [CLI, 'check-config', '--strict', '-c', file], { env: { PATH: process.env.PATH ?? '', NODE_EXTRA_CA_CERTS: bed.emu.caCertPath } }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })),
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ defaultAccount: 'default' });
    expect(r.stderr.split('\n')).toEqual([
      'account default:',
      expect.stringMatching(/^ {2}token ✓ \(account default, 127\.0\.0\.1:\d+, credential secret; roles: Mail\.Send\)$/),
      '  permissions ✗ account default: Mail.ReadWrite missing (token roles: Mail.Send): messages over 3000000 bytes (one Graph request) are refused at MAIL FROM SIZE= and at the end of DATA',
      '',
    ]);
  });
});

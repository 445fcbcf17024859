/**
 * Graph reads the headers: recipient policy on every address Graph delivers to, the whole header section or a
 * refusal, a From that Exchange accepts, and a Received that names nobody the other recipients should not see.
 * Against the emulator, which is as strict as Exchange Online (From must be the mailbox or a Send As address).
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { describe, expect, it } from 'vitest';
import { message, useTestbed } from '../helpers/graph-relay.js';
import type { RelayProcess } from '../helpers/relay-process.js';
import { pySend } from '../helpers/smtp-clients.js';
import { REPO } from '../helpers/relay-process.js';
import { parse as parseYaml } from 'yaml';

const tb = useTestbed();

const POLICY = { policy: { allowedRecipientDomains: ['contoso.example'] } };

function queueEmpty(r: RelayProcess): boolean {
  return ['queue', 'tmp'].every((d) => !existsSync(path.join(r.spoolDir, d)) || readdirSync(path.join(r.spoolDir, d)).filter((f) => !f.startsWith('.')).length === 0);
}

/** The header section of what Graph received, unfolded, as [name, value] pairs. */
function headersOf(mime: Buffer): [string, string][] {
  const text = mime.toString('utf8');
  const head = text.slice(0, text.indexOf('\r\n\r\n')).replace(/\r\n[ \t]/g, ' ');
  return head.split('\r\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()] as [string, string]);
}
const header = (mime: Buffer, name: string): string[] => headersOf(mime).filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);

describe('one recipient set: what Graph delivers to is what policy checks', () => {
  for (const field of ['To', 'Cc', 'Bcc']) {
    it(`refuses a ${field}: address outside policy.allowedRecipientDomains, naming the address and the rule`, async () => {
      const r = await tb.relay(POLICY);
      const msg = message({ From: 'alice@contoso.example', To: 'bob@contoso.example', [field === 'To' ? 'To' : field]: field === 'To' ? 'bob@contoso.example, victim@evil.example' : 'victim@evil.example', Subject: 'x' }, 'x\r\n');
      const res = await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], msg);
      expect(res).toMatchObject({ ok: false, code: 550 });
      expect(res.message).toMatch(/^5\.7\.1 Recipient <victim@evil\.example> is not allowed: domain evil\.example is not in policy\.allowedRecipientDomains/);
      expect(res.message).toContain(`${field}: header`);
      await r.waitForLog((l) => l.reason === 'recipient-policy');
      expect(tb.emu.sent).toHaveLength(0);
      expect(queueEmpty(r)).toBe(true);
    });
  }

  it('refuses it whatever delivery.headerOnlyRecipients says (envelope mode too), and per network rule', async () => {
    const r = await tb.relay({
      delivery: { headerOnlyRecipients: 'envelope' },
      policy: { networks: [{ cidr: '127.0.0.0/8', allowedSenders: ['@contoso.example'], allowedRecipientDomains: ['contoso.example'] }] },
    });
    // In envelope mode a header-only address is removed, so it is not a recipient; but an envelope one is checked at RCPT.
    const res = await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ From: 'alice@contoso.example', To: 'bob@contoso.example', Cc: 'victim@evil.example', Subject: 'x' }, 'x\r\n'));
    expect(res.ok).toBe(true);
    const [sent] = await tb.emu.waitForSent(1);
    expect(sent!.recipients).toEqual(['bob@contoso.example']);
    expect(header(sent!.mime!, 'X-Original-Cc')).toEqual(['victim@evil.example']);

    const r2 = await tb.relay({ policy: { networks: [{ cidr: '127.0.0.0/8', allowedSenders: ['@contoso.example'], allowedRecipientDomains: ['contoso.example'] }] } });
    const res2 = await pySend(r2.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ From: 'alice@contoso.example', To: 'bob@contoso.example', Bcc: 'victim@evil.example', Subject: 'x' }, 'x\r\n'));
    expect(res2).toMatchObject({ ok: false, code: 550 });
    expect(res2.message).toContain('Recipient <victim@evil.example> is not allowed for clients in 127.0.0.0/8: domain evil.example is not in policy.networks[0].allowedRecipientDomains');
  });

  it('counts header recipients against limits.maxRecipients', async () => {
    const r = await tb.relay({ limits: { maxRecipients: 3 } });
    const res = await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ From: 'alice@contoso.example', To: 'bob@contoso.example, c1@contoso.example', Cc: 'c2@contoso.example, c3@contoso.example', Subject: 'x' }, 'x\r\n'));
    expect(res).toMatchObject({ ok: false, code: 550 });
    expect(res.message).toMatch(/^5\.7\.1 Too many recipients: Graph would deliver to 4 addresses .* the limit is 3 \(limits\.maxRecipients\)/);
  });

  it('delivers to exactly the envelope recipients in envelope mode, keeping To and Cc as X-Original-*', async () => {
    const r = await tb.relay({ delivery: { headerOnlyRecipients: 'envelope' } });
    const msg = message({ From: 'alice@contoso.example', To: '"Bob B." <bob@contoso.example>, "The List" <list@contoso.example>', Cc: 'carol@contoso.example', Bcc: 'dave@contoso.example', Subject: 'x' }, 'x\r\n');
    const res = await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example', 'erin@contoso.example'], msg);
    expect(res.ok).toBe(true);
    const [sent] = await tb.emu.waitForSent(1);
    expect(sent!.recipients.sort()).toEqual(['bob@contoso.example', 'erin@contoso.example']);
    expect(header(sent!.mime!, 'To')).toEqual(['"Bob B." <bob@contoso.example>']);
    expect(header(sent!.mime!, 'Cc')).toEqual([]);
    expect(header(sent!.mime!, 'X-Original-To')).toEqual(['"Bob B." <bob@contoso.example>, "The List" <list@contoso.example>']);
    expect(header(sent!.mime!, 'X-Original-Cc')).toEqual(['carol@contoso.example']);
    // A Bcc is never kept where recipients could read it.
    expect(sent!.mime!.toString('latin1')).not.toContain('dave@');
    const log = await r.waitForLog((l) => l.event === 'header-only-removed');
    expect(log.headerOnlyRcpts).toBe(3);
  });
});

describe('the whole header section, or a refusal', () => {
  const filler = (bytes: number): Record<string, string> => {
    const h: Record<string, string> = {};
    for (let i = 0; i * 1000 < bytes; i++) h[`X-Filler-${i}`] = 'f'.repeat(985);
    return h;
  };

  it('sees a Cc: placed after 200 KB of other fields', async () => {
    const r = await tb.relay(POLICY);
    const msg = message({ From: 'alice@contoso.example', To: 'bob@contoso.example', ...filler(200_000), Cc: 'victim@evil.example', Subject: 'x' }, 'x\r\n');
    const res = await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], msg);
    expect(res).toMatchObject({ ok: false, code: 550 });
    expect(res.message).toContain('<victim@evil.example>');
  });

  it('refuses a header section over limits.maxHeaderSize (default 256 KB) before 250, whatever it holds', async () => {
    const r = await tb.relay(POLICY);
    const msg = message({ From: 'alice@contoso.example', To: 'bob@contoso.example', ...filler(1_100_000), Cc: 'victim@evil.example', Subject: 'x' }, 'x\r\n');
    const res = await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], msg);
    expect(res).toMatchObject({ ok: false, code: 552 });
    expect(res.message).toMatch(/^5\.3\.4 Header size exceeds fixed maximum size: .* the limit is 262144 \(limits\.maxHeaderSize/);
    expect(queueEmpty(r)).toBe(true);
    expect(tb.emu.sent).toHaveLength(0);
  });

  it('counts the fields the relay adds: a section just under the limit with a long Bcc goes over it', async () => {
    const r = await tb.relay({ limits: { maxHeaderSize: '8KB', maxRecipients: 500 } });
    const rcpts = Array.from({ length: 150 }, (_, i) => `recipient-number-${i}@contoso.example`);
    const msg = message({ From: 'alice@contoso.example', To: 'bob@contoso.example', ...filler(4000), Subject: 'x' }, 'x\r\n');
    const res = await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example', ...rcpts], msg);
    expect(res).toMatchObject({ ok: false, code: 552 });
    expect(res.message).toContain('with the Received and Bcc fields the relay adds');
    // The same message to one recipient fits.
    const ok = await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], msg);
    expect(ok.ok).toBe(true);
    await tb.emu.waitForSent(1);
  });
});

describe('a From that Graph will accept', () => {
  const printer = { mailboxes: { map: { 'scanner@printer.local': 'scans@contoso.example' } } };

  it('rewrites a device From to the mapped mailbox, keeping its name, the original in X-Original-From and Reply-To', async () => {
    const r = await tb.relay(printer);
    const msg = message({ From: '"Floor 3 Scanner" <scanner@printer.local>', To: 'alice@contoso.example', Subject: 'Scan' }, 'scan\r\n');
    const res = await pySend(r.smtpPort, 'scanner@printer.local', ['alice@contoso.example'], msg);
    expect(res.ok).toBe(true);
    const [sent] = await tb.emu.waitForSent(1);
    expect(sent!.upn).toBe('scans@contoso.example');
    expect(header(sent!.mime!, 'From')).toEqual(['"Floor 3 Scanner" <scans@contoso.example>']);
    expect(header(sent!.mime!, 'X-Original-From')).toEqual(['"Floor 3 Scanner" <scanner@printer.local>']);
    expect(header(sent!.mime!, 'Reply-To')).toEqual(['"Floor 3 Scanner" <scanner@printer.local>']);
    const qid = (await r.waitForLog((l) => l.event === 'received')).qid;
    expect(await r.waitForLog((l) => l.event === 'from-rewritten')).toMatchObject({ qid, mailbox: 'scans@contoso.example', from: ['scanner@printer.local'], replyTo: true });
    await r.waitForLog((l) => l.event === 'delivered' && l.qid === qid);
  });

  it('uses the address as the name when there is none, never with an @, and keeps an existing Reply-To', async () => {
    const r = await tb.relay(printer);
    const msg = message({ From: 'scanner@printer.local', 'Reply-To': 'helpdesk@contoso.example', To: 'alice@contoso.example', Subject: 'Scan' }, 'scan\r\n');
    expect((await pySend(r.smtpPort, 'scanner@printer.local', ['alice@contoso.example'], msg)).ok).toBe(true);
    const [sent] = await tb.emu.waitForSent(1);
    expect(header(sent!.mime!, 'From')).toEqual(['"scanner at printer.local" <scans@contoso.example>']);
    expect(header(sent!.mime!, 'Reply-To')).toEqual(['helpdesk@contoso.example']);
  });

  it('handles several From addresses, a Sender, and an encoded name; replyToOriginalFrom: false adds no Reply-To', async () => {
    const r = await tb.relay({ mailboxes: { ...printer.mailboxes, replyToOriginalFrom: false } });
    const msg = message({ From: '=?utf-8?q?B=C3=BCro_3?= <scanner@printer.local>, ops@printer.local', Sender: 'scanner@printer.local', To: 'alice@contoso.example', Subject: 'Scan' }, 'scan\r\n');
    expect((await pySend(r.smtpPort, 'scanner@printer.local', ['alice@contoso.example'], msg)).ok).toBe(true);
    const [sent] = await tb.emu.waitForSent(1);
    expect(header(sent!.mime!, 'From')).toHaveLength(1);
    expect(header(sent!.mime!, 'From')[0]).toMatch(/^=\?UTF-8\?Q\?B=C3=BCro_3\?= <scans@contoso\.example>$/);
    expect(header(sent!.mime!, 'Sender')).toEqual([]);
    expect(header(sent!.mime!, 'X-Original-Sender')).toEqual(['scanner@printer.local']);
    expect(header(sent!.mime!, 'Reply-To')).toEqual([]);
    expect(await r.waitForLog((l) => l.event === 'from-rewritten')).toMatchObject({ from: ['scanner@printer.local', 'ops@printer.local'], sender: ['scanner@printer.local'], replyTo: false });
  });

  it('leaves a message whose From already is the mailbox byte-exact', async () => {
    const r = await tb.relay();
    const msg = message({ From: 'Alice <alice@contoso.example>', To: 'bob@contoso.example', Subject: 'Mine', 'Message-ID': '<mine@test.example>' }, 'x\r\n');
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], msg)).ok).toBe(true);
    const [sent] = await tb.emu.waitForSent(1);
    const mime = sent!.mime!;
    const afterReceived = mime.subarray(mime.indexOf('\r\nFrom:') + 2);
    expect(afterReceived.equals(msg)).toBe(true);
    expect(r.logs.some((l) => l.event === 'from-rewritten')).toBe(false);
  });

  it('with rewriteFrom: never, a granted Send As goes out as written, and one not granted fails at Graph (ErrorSendAsDenied)', async () => {
    tb.emu.grantSendAs('scans@contoso.example', 'scanner@printer.local');
    const r = await tb.relay({ mailboxes: { map: { 'scanner@printer.local': { mailbox: 'scans@contoso.example', rewriteFrom: 'never' }, 'other@printer.local': { mailbox: 'scans@contoso.example', rewriteFrom: 'never' } } } });
    expect((await pySend(r.smtpPort, 'scanner@printer.local', ['alice@contoso.example'], message({ From: 'scanner@printer.local', To: 'alice@contoso.example', Subject: 'a' }, 'x\r\n'))).ok).toBe(true);
    const [sent] = await tb.emu.waitForSent(1);
    expect(header(sent!.mime!, 'From')).toEqual(['scanner@printer.local']);
    expect((await pySend(r.smtpPort, 'other@printer.local', ['alice@contoso.example'], message({ From: 'other@printer.local', To: 'alice@contoso.example', Subject: 'b' }, 'x\r\n'))).ok).toBe(true);
    const dead = await r.waitForLog((l) => l.event === 'dead-lettered');
    expect(dead).toMatchObject({ reason: 'send-as-denied', status: 403, code: 'ErrorSendAsDenied' });
  });

  it('rewrites a From that is the mailbox but whose name holds another address (Exchange refuses those too)', async () => {
    const r = await tb.relay();
    const msg = message({ From: '"ceo@contoso.example" <alice@contoso.example>', To: 'bob@contoso.example', Subject: 'x' }, 'x\r\n');
    expect((await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], msg)).ok).toBe(true);
    const [sent] = await tb.emu.waitForSent(1);
    expect(header(sent!.mime!, 'From')).toEqual(['"ceo at contoso.example" <alice@contoso.example>']);
    // Its own address is no reply address to add.
    expect(header(sent!.mime!, 'Reply-To')).toEqual([]);
  });

  it('the README quick-start message (a printer address, config/relay.capture.yaml) is delivered by a strict Exchange', async () => {
    const capture = parseYaml(readFileSync(path.join(REPO, 'config/relay.capture.yaml'), 'utf8')) as Record<string, unknown>;
    const r = await tb.relay({ mailboxes: capture['mailboxes'], hostname: capture['hostname'] });
    // What the README's smtplib snippet sends (EmailMessage → send_message), through nodemailer here.
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: r.smtpPort, secure: false, ignoreTLS: true });
    await t.sendMail({ from: 'scanner@printer.local', to: 'alice@contoso.example', subject: 'Scan', text: 'Hello from the printer' });
    t.close();
    const [sent] = await tb.emu.waitForSent(1);
    expect(sent!.recipients).toEqual(['alice@contoso.example']);
    await r.waitForLog((l) => l.event === 'delivered');
  });
});

describe('Received names a recipient only when Graph delivers to exactly one', () => {
  const receivedOf = (mime: Buffer): string => header(mime, 'Received')[0]!;

  it('names the only recipient', async () => {
    const r = await tb.relay();
    await pySend(r.smtpPort, 'alice@contoso.example', ['bob@contoso.example'], message({ From: 'alice@contoso.example', To: 'bob@contoso.example', Subject: 'x' }, 'x\r\n'));
    const [sent] = await tb.emu.waitForSent(1);
    expect(receivedOf(sent!.mime!)).toContain('for <bob@contoso.example>');
  });

  it('names nobody when one envelope recipient is a Bcc beside the To (the To recipient must not learn of it)', async () => {
    const r = await tb.relay();
    await pySend(r.smtpPort, 'alice@contoso.example', ['hidden@contoso.example'], message({ From: 'alice@contoso.example', To: 'bob@contoso.example', Subject: 'x' }, 'x\r\n'));
    const [sent] = await tb.emu.waitForSent(1);
    expect(sent!.recipients.sort()).toEqual(['bob@contoso.example', 'hidden@contoso.example']);
    expect(receivedOf(sent!.mime!)).not.toContain('for <');
    expect(sent!.mime!.toString('latin1').split('\r\n\r\n')[0]!.replace(/^Bcc:.*\r\n/m, '')).not.toContain('hidden@');
  });
});

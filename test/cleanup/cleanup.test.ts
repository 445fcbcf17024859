/** The header section at ingest: collected whole across any chunking, cut where parsers cut it, rewritten field by field. */

import { describe, expect, it } from 'vitest';
import { cleanupHeaders, type CleanupInput } from '../../src/cleanup/cleanup.js';
import { rewriteFrom } from '../../src/cleanup/from-rewrite.js';
import { HeaderCollector, splitFields } from '../../src/mime/headers.js';

/** A deterministic generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

describe('HeaderCollector', () => {
  it('finds the same section and body however the message is cut into chunks', () => {
    const next = rng(11);
    const samples = [
      'From: a@x\r\nTo: b@y\r\n\r\nbody\r\n\r\nmore\r\n',
      '\r\nbody only\r\n',
      'Subject: one\r\n\r\n',
      'X: 1\r\n folded\r\n\r\n\r\n\r\n',
    ];
    for (const text of samples) {
      const whole = Buffer.from(text, 'latin1');
      const end = text.startsWith('\r\n') ? 0 : text.indexOf('\r\n\r\n') + 2;
      for (let round = 0; round < 200; round++) {
        const c = new HeaderCollector(1 << 20);
        let body: Buffer | null = null;
        const rest: Buffer[] = [];
        for (let at = 0; at < whole.length; ) {
          const n = 1 + Math.floor(next() * 6);
          const chunk = whole.subarray(at, at + n);
          at += n;
          if (body) rest.push(chunk);
          else body = c.push(chunk);
        }
        expect(c.block?.toString('latin1'), JSON.stringify(text)).toBe(text.slice(0, end));
        expect(Buffer.concat([body!, ...rest]).toString('latin1')).toBe(text.slice(end + 2));
      }
    }
  });

  it('past the limit, stops at the end of the line that crosses it, marked unfinished; finish() takes a section with no body', () => {
    const c = new HeaderCollector(100);
    expect(c.push(Buffer.from(`X: ${'a'.repeat(60)}\r\n`))).toBeNull();
    expect(c.push(Buffer.from(`Y: ${'b'.repeat(30)}`))).toBeNull(); // 98 bytes
    expect(c.push(Buffer.from(`${'b'.repeat(30)}\r\nZ: 1\r\n`))?.toString()).toBe('Z: 1\r\n');
    expect(c.complete).toBe(false);
    expect(c.block!.toString()).toBe(`X: ${'a'.repeat(60)}\r\nY: ${'b'.repeat(60)}\r\n`);
    const d = new HeaderCollector(100);
    d.push(Buffer.from('Subject: s\r\n'));
    expect(d.finish().toString()).toBe('Subject: s\r\n');
    expect(d.complete).toBe(true);
  });
});

const settings: CleanupInput['settings'] = {
  maxHeaderSize: 256 * 1024,
  maxReceivedHeaders: 50,
  maxRecipients: 500,
  policy: { networks: [], checkHeaderFrom: true, allowedRecipientDomains: ['contoso.example'] },
  headerOnlyRecipients: 'deliver',
  rewriteFrom: 'mailbox',
  replyToOriginalFrom: true,
};
const received = { helo: 'printer', clientAddress: '10.0.0.9', byHost: 'relay.test', protocol: 'ESMTP', queueId: 'Q1', date: 0 };
const clean = (text: string, over: Partial<CleanupInput> = {}) =>
  cleanupHeaders({ block: Buffer.from(text, 'utf8'), complete: true, rcptTo: ['bob@contoso.example'], mailbox: 'scans@contoso.example', rule: null, received, settings, ...over });

describe('cleanupHeaders', () => {
  it('ends the section at a line that is no header field, so a Cc: after it is body to every reader', () => {
    const r = clean('From: scans@contoso.example\r\nTo: bob@contoso.example\r\nMessage-ID: <m@x>\r\nthis line is no field\r\nCc: victim@evil.example\r\n');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.endedAtNonField).toBe(true);
    expect(r.graphRecipients).toBe(1);
    expect(r.header.toString()).toMatch(/Message-ID: <m@x>\r\n\r\nthis line is no field\r\nCc: victim@evil\.example\r\n$/);
  });

  it('adds a Message-ID at the end of a section without one (as Postfix cleanup does), and leaves one given byte for byte', () => {
    const added = clean('From: scans@contoso.example\r\nTo: bob@contoso.example\r\nSubject: s\r\n', { received: { ...received, queueId: '4dKx9ZbC2mQp', date: 1764000000123 } });
    expect(added).toMatchObject({ ok: true, messageId: '<4dKx9ZbC2mQp.1764000000123@relay.test>', messageIdAdded: true });
    if (!added.ok) return;
    expect(added.header.toString()).toMatch(/\r\nSubject: s\r\nMessage-ID: <4dKx9ZbC2mQp\.1764000000123@relay\.test>\r\n\r\n$/);
    // A section that ended at a line that is no field: the Message-ID goes before the empty line the relay puts there.
    const repaired = clean('To: bob@contoso.example\r\nnot a field\r\n');
    expect(repaired.ok && repaired.header.toString()).toMatch(/To: bob@contoso\.example\r\nMessage-ID: <Q1\.0@relay\.test>\r\n\r\nnot a field\r\n$/);
    // The last field without its line end still gets a line of its own.
    const open = clean('To: bob@contoso.example', { complete: true });
    expect(open.ok && open.header.toString()).toMatch(/To: bob@contoso\.example\r\nMessage-ID: <Q1\.0@relay\.test>\r\n\r\n$/);
    const given = 'From: scans@contoso.example\r\nTo: bob@contoso.example\r\nMessage-ID:  <Odd.Form (comment) @x.example>\r\n';
    const kept = clean(given);
    expect(kept).toMatchObject({ ok: true, messageId: '<Odd.Form (comment) @x.example>', messageIdAdded: false });
    expect(kept.ok && kept.header.toString().endsWith(`${given}\r\n`)).toBe(true);
  });

  it('refuses an unfinished section with no such line, and counts the whole section otherwise', () => {
    const big = `X: ${'a'.repeat(300)}\r\n`.repeat(10);
    expect(clean(big, { complete: false })).toMatchObject({ ok: false, code: 552, reason: 'header-size' });
    expect(clean(big, { settings: { ...settings, maxHeaderSize: 2048 } })).toMatchObject({ ok: false, code: 552 });
    // An unfinished section cut in the middle of a line is not cut at that line.
    expect(clean(`${big}no colon yet`, { complete: false })).toMatchObject({ ok: false, code: 552 });
    expect(clean(`Subject: s\r\nno colon\r\n${big}`, { complete: false, settings: { ...settings, maxHeaderSize: 2048 } })).toMatchObject({ ok: true, endedAtNonField: true });
  });

  it('reads Received over the whole section, and names the rule and the header of a refused recipient', () => {
    const loop = 'Received: x\r\n'.repeat(51);
    expect(clean(`${loop}To: bob@contoso.example\r\n`)).toMatchObject({ ok: false, code: 554, reason: 'loop' });
    const r = clean('To: bob@contoso.example\r\nBcc: a@contoso.example, "x" <v@evil.example>\r\n');
    expect(r).toMatchObject({ ok: false, code: 550, reason: 'recipient-policy' });
    expect(!r.ok && r.text).toBe('5.7.1 Recipient <v@evil.example> is not allowed: domain evil.example is not in policy.allowedRecipientDomains (named in the Bcc: header; Graph delivers to every To/Cc/Bcc address)');
  });
});

describe('rewriteFrom', () => {
  const run = (text: string, mailbox = 'scans@contoso.example', hasReplyTo = false) => {
    const block = Buffer.from(text, 'utf8');
    return rewriteFrom(block, splitFields(block), mailbox, { hasReplyTo, replyToOriginalFrom: true });
  };

  it('leaves the mailbox itself alone (any case, any name without an address, no From at all)', () => {
    expect(run('From: Scans <SCANS@Contoso.Example>\r\n')).toBeNull();
    expect(run('From: "scans@contoso.example" <scans@contoso.example>\r\nSender: scans@contoso.example\r\n')).toBeNull();
    expect(run('Subject: no From\r\n')).toBeNull();
  });

  it('rewrites a group, a second From field, or a Sender', () => {
    expect(run('From: undisclosed:;\r\n')?.originalFrom).toEqual([]);
    const two = run('From: a@x.example\r\nFrom: b@y.example\r\n');
    expect(two?.originalFrom).toEqual(['a@x.example', 'b@y.example']);
    expect([...two!.edits.values()].map((e) => Buffer.concat([...(e.replace ?? []), ...(e.after ?? [])]).toString())).toEqual([
      'From: "a at x.example" <scans@contoso.example>\r\nX-Original-From: a@x.example\r\nReply-To: a@x.example, b@y.example\r\n',
      'X-Original-From: b@y.example\r\n',
    ]);
    const sender = run('From: scans@contoso.example\r\nSender: someone@contoso.example\r\n');
    expect(sender).toMatchObject({ originalFrom: [], originalSender: ['someone@contoso.example'], replyToAdded: false });
  });

  it('writes names that cannot break the field: quotes escaped, controls dropped, non-ASCII encoded', () => {
    const edit = (text: string) => Buffer.concat(run(text)!.edits.values().next().value!.replace!).toString();
    expect(edit('From: "Say \\"hi\\" \\\\ me" <d@x.example>\r\n')).toBe('From: "Say \\"hi\\" \\\\ me" <scans@contoso.example>\r\n');
    expect(edit('From: Jörg Müller <d@x.example>\r\n')).toBe('From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <scans@contoso.example>\r\n');
    expect(edit('From: =?utf-8?b?Ym9zc0BldmlsLmV4YW1wbGU=?= <d@x.example>\r\n')).toBe('From: "boss at evil.example" <scans@contoso.example>\r\n');
  });
});

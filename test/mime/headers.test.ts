/** What is added to the message: the Received header and the Bcc header, and the base64 stream. */

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { base64Length, base64Stream, bccHeader } from '../../src/mime/compose.js';
import { planRecipients } from '../../src/policy/recipients.js';
import { receivedHeader, rfc5322Date } from '../../src/mime/received.js';

describe('added headers', () => {
  it('folds a long Bcc header under 78 characters a line', () => {
    const addrs = Array.from({ length: 12 }, (_, i) => `recipient-${i}@fabrikam.example`);
    const h = bccHeader(addrs);
    expect(h.endsWith('\r\n')).toBe(true);
    for (const line of h.split('\r\n').filter(Boolean)) expect(line.length).toBeLessThanOrEqual(78);
    expect(h.replace(/\r\n/g, '').replace(/^Bcc:/, '').split(',').map((s) => s.trim())).toEqual(addrs);
    expect(bccHeader([])).toBe('');
  });

  it('names client, relay and queue id in Received, and the recipient only when there is one', () => {
    const date = Date.UTC(2026, 10, 28, 9, 5, 7);
    const one = receivedHeader({ helo: 'printer', clientAddress: '::ffff:10.1.2.3', byHost: 'relay.example', protocol: 'ESMTP', queueId: 'ABC', recipients: ['x@y.example'], date });
    expect(one).toBe('Received: from printer ([10.1.2.3])\r\n\tby relay.example (smtp-graph-relay) with ESMTP id ABC\r\n\tfor <x@y.example>;\r\n\tSat, 28 Nov 2026 09:05:07 +0000\r\n');
    const two = receivedHeader({ helo: 'bad\r\nInjected: 1', clientAddress: '2001:db8::1', byHost: 'r', protocol: 'ESMTP', queueId: 'Q', recipients: ['a@b.example', 'c@d.example'], date });
    expect(two).not.toContain('for <');
    expect(two).toContain('[IPv6:2001:db8::1]');
    expect(two.split('\r\n').filter((l) => l.startsWith('Injected'))).toEqual([]);
  });

  it('dates trace headers as RFC 5322 does, whichever second comes next (the text is cached per second)', () => {
    const expected = (d: Date): string => d.toUTCString().replace(/^(\w{3}), 0?(\d+) (\w{3}) (\d{4}) (\S+) GMT$/, '$1, $2 $3 $4 $5 +0000');
    const base = Date.UTC(2026, 11, 31, 23, 59, 58, 500);
    for (const ms of [base, base + 1, base + 499, base + 500, base + 1500, base, base - 86_400_000, base + 1500]) {
      expect(rfc5322Date(ms), String(ms)).toBe(expected(new Date(ms)));
    }
    expect(rfc5322Date(Date.UTC(2027, 0, 1, 0, 0, 0))).toBe('Fri, 1 Jan 2027 00:00:00 +0000');
  });

  it('plans Bcc for envelope-only recipients and reports header-only ones', () => {
    expect(planRecipients(['A@x.example', 'b@x.example', 'c@x.example'], ['a@x.example'], ['b@x.example'], [])).toEqual({ bcc: ['c@x.example'], headerOnly: [] });
    expect(planRecipients(['a@x.example'], ['a@x.example', 'list@x.example'], [], [])).toEqual({ bcc: [], headerOnly: ['list@x.example'] });
    // Each address once, compared without case: the first spelling of an envelope recipient is kept.
    expect(planRecipients(['C@x.example', 'c@x.example', 'd@x.example', 'f@x.example'], ['E@x.example', 'e@x.example'], ['G@x.example'], ['D@x.example'])).toEqual({
      bcc: ['C@x.example', 'f@x.example'],
      headerOnly: ['e@x.example', 'g@x.example'],
    });
  });

  it('streams prefix + file as one continuous base64 string of the announced length', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'b64-'));
    for (const size of [0, 1, 2, 3, 200_000, 1_000_001]) {
      const data = Buffer.alloc(size, 0).map((_, i) => (i * 7919) % 251);
      const file = path.join(dir, `m${size}`);
      writeFileSync(file, Buffer.concat([data, Buffer.from('{"trailer":1}\n')])); // what follows the message in a spool file
      const prefix = Buffer.from('Bcc: z@y.example\r\n');
      let done = false;
      const chunks: Buffer[] = [];
      for await (const c of base64Stream(prefix, file, data.length, () => (done = true))) chunks.push(c);
      const out = Buffer.concat(chunks).toString('latin1');
      expect(out).toBe(Buffer.concat([prefix, data]).toString('base64'));
      expect(out.length).toBe(base64Length(prefix.length + size));
      expect(done).toBe(true);
    }
  });
});

describe('header facts', () => {
  it('reads recipients from folded, grouped and UTF-8 headers, and counts Received', async () => {
    const { readHeaderFacts } = await import('../../src/mime/headers.js');
    const block = Buffer.from(
      'Received: from a by b; Sat, 28 Nov 2026 00:00:00 +0000\r\nreceived : from c\r\n by d\r\n' +
        'To: "Doe, Jane" <jane@contoso.example>,\r\n\tteam: x@contoso.example, y@contoso.example;\r\n' +
        'Cc: =?utf-8?q?Zo=C3=AB?= <zoë@contoso.example>\r\nFrom: dev@printer.local\r\nMessage-ID: <m1@x>\r\n\r\n',
      'utf8',
    );
    expect(readHeaderFacts(block)).toEqual({
      receivedCount: 2,
      to: ['jane@contoso.example', 'x@contoso.example', 'y@contoso.example'],
      cc: ['zoë@contoso.example'],
      bcc: [],
      from: ['dev@printer.local'],
      sender: [],
      replyTo: false,
      messageId: '<m1@x>',
    });
  });

  it('reads single addresses without the full parser exactly as the parser does', async () => {
    const { addresses } = await import('../../src/mime/headers.js');
    const { default: addressparser } = await import('nodemailer/lib/addressparser');
    const samples = [
      'dev@printer.local',
      'Scanner <scan.01+tag@contoso.example>',
      '=?utf-8?q?Zo=C3=AB?= <zoë@contoso.example>',
      'Jane Doe<JANE@Contoso.Example>',
      '<a_b-c@x.example>',
      'no.at.sign',
      'a@b@c.example',
      '"Doe, Jane" <jane@contoso.example>',
      'x@contoso.example, y@contoso.example',
      'team: x@contoso.example;',
      'a@[192.0.2.1]',
      'Jane (work) <jane@contoso.example>',
    ];
    for (const v of samples) {
      const parsed = addressparser(v, { flatten: true }).map((a) => a.address).filter(Boolean);
      expect(addresses(v), v).toEqual(parsed);
    }
  });

  it('reads the same facts as a plain unfold-then-filter reading, over generated header sections', async () => {
    const { readHeaderFacts, addresses } = await import('../../src/mime/headers.js');
    // A plain reading (split into lines, unfold, stop at a non-field line, then filter by name): the oracle.
    const reference = (text: string) => {
      const fields: { name: string; value: string }[] = [];
      for (const line of text.split(/\r?\n/)) {
        if (/^[ \t]/.test(line) && fields.length > 0) {
          fields[fields.length - 1]!.value += ` ${line.trim()}`;
          continue;
        }
        const m = /^([^:\s]+)[ \t]*:(.*)$/.exec(line);
        // A line that is neither a field nor a continuation ends the section.
        if (!m) break;
        fields.push({ name: m[1]!.toLowerCase(), value: m[2]!.trim() });
      }
      const list = (name: string) => fields.filter((f) => f.name === name).flatMap((f) => addresses(f.value));
      return {
        receivedCount: fields.filter((f) => f.name === 'received').length,
        to: list('to'),
        cc: list('cc'),
        bcc: list('bcc'),
        from: list('from'),
        sender: list('sender'),
        replyTo: fields.some((f) => f.name === 'reply-to'),
        messageId: fields.find((f) => f.name === 'message-id')?.value ?? null,
      };
    };
    const names = ['To', 'cc', 'BCC', 'From', 'Received', 'Message-ID', 'Subject', 'X-To', 'To ', 'to\t', 'Resent-To', 'To x', 'Cc\u00a0', ' \tFrom', 'Sender', 'Reply-To'];
    const values = ['a@x.example', ' "Doe, Jane" <j@x.example>', 'g: p@x.example, q@x.example;', '', '<m@id>', 'no address', 'Zoë <zoë@x.example>'];
    let seed = 7;
    const pick = <T,>(xs: readonly T[]): T => xs[(seed = (seed * 1103515245 + 12345) % 2 ** 31) % xs.length]!;
    for (let round = 0; round < 500; round++) {
      let text = '';
      const lines = 1 + (round % 9);
      for (let i = 0; i < lines; i++) {
        const eol = pick(['\r\n', '\r\n', '\n']);
        const kind = pick(['field', 'field', 'field', 'fold', 'junk']);
        if (kind === 'field') text += `${pick(names)}:${pick(values)}${eol}`;
        else if (kind === 'fold') text += `${pick([' ', '\t', '  \t'])}${pick(values)}${eol}`;
        else text += `${pick(['no colon here', ':starts with colon', ' '])}${eol}`;
      }
      text += pick(['\r\n', '']);
      expect(readHeaderFacts(Buffer.from(text, 'utf8')), JSON.stringify(text)).toEqual(reference(text));
    }
  });
});

/** Properties of envelope address handling: smtp-server's RCPT/MAIL parser, the relay's Mailbox check and recipient policy. */

import fc from 'fast-check';
import addressparser from 'nodemailer/lib/addressparser';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { describe, expect, it } from 'vitest';
import type { PolicyConfig } from '../../src/config/front-door.js';
import { bccHeader } from '../../src/mime/compose.js';
import { checkRecipient, isMailbox, routedLocalPart, senderMatches } from '../../src/policy/senders.js';

/** smtp-server's own parser of `MAIL FROM:`/`RCPT TO:` lines, run as a connection runs it. */
function parseCommand(name: 'MAIL FROM' | 'RCPT TO', line: string): { address: string } | false {
  const conn = { _server: { options: {}, logger: { error: () => undefined } }, id: 'prop', session: {} };
  const parse = (SMTPConnection.prototype as unknown as { _parseAddressCommand(name: string, cmd: Buffer): { address: string } | false })._parseAddressCommand;
  return parse.call(conn, name.toLowerCase(), Buffer.from(line, 'utf8'));
}

const policy = (over: Partial<PolicyConfig> = {}): PolicyConfig => ({ networks: [], checkHeaderFrom: true, allowedRecipientDomains: ['contoso.example'], ...over });

// Local parts from RFC 5321 atext plus every character that means something to a header parser.
const localChar = fc.constantFrom(...'abcXYZ019.!#$%&\'*+/=?^_`{|}~-', ...'",;:()<>[]\\@ ', 'é', 'ü');
const local = fc.string({ unit: localChar, minLength: 1, maxLength: 12 });
const domain = fc.constantFrom('contoso.example', 'CONTOSO.example', 'evil.example', 'contoso.example.evil.example', 'sub.contoso.example', '[10.0.0.1]');
const hop = fc.constantFrom('hop.example', 'relay.contoso.example', '[192.0.2.1]', 'evil.example');
const route = fc.array(hop, { maxLength: 3 }).map((hops) => (hops.length ? `${hops.map((h) => `@${h}`).join(',')}:` : ''));

describe('envelope addresses', () => {
  it('a recipient the relay accepts for contoso.example reaches Graph as that one address and no other (Bcc: header read back)', () => {
    fc.assert(
      fc.property(route, local, domain, (r, l, d) => {
        const parsed = parseCommand('RCPT TO', `RCPT TO:<${r}${l}@${d}>`);
        if (!parsed || !isMailbox(parsed.address) || !checkRecipient(parsed.address, null, policy()).ok) return;
        const seen = addressparser(bccHeader([parsed.address]).slice('Bcc:'.length), { flatten: true }).map((a) => a.address);
        expect(seen).toEqual([parsed.address]);
        expect(parsed.address.slice(parsed.address.lastIndexOf('@') + 1).toLowerCase()).toBe('contoso.example');
      }),
      { numRuns: 2000 },
    );
  });

  it('a source route is dropped (RFC 5321 appendix C): with or without one, the same address', () => {
    fc.assert(
      fc.property(route, local, domain, (r, l, d) => {
        // A local part that starts with "@" would be a route of its own.
        fc.pre(!l.startsWith('@'));
        const bare = parseCommand('RCPT TO', `RCPT TO:<${l}@${d}>`);
        const routed = parseCommand('RCPT TO', `RCPT TO:<${r}${l}@${d}>`);
        expect(routed && routed.address).toBe(bare && bare.address);
      }),
      { numRuns: 1000 },
    );
  });

  it('an accepted address holds no whitespace, angle bracket or control character, and exactly one "@"', () => {
    fc.assert(
      fc.property(fc.constantFrom('MAIL FROM', 'RCPT TO') as fc.Arbitrary<'MAIL FROM' | 'RCPT TO'>, fc.string({ unit: fc.oneof(localChar, fc.constantFrom('\r', '\t', '\0', '\u200b', '\x7f')), maxLength: 16 }), domain, (cmd, l, d) => {
        const parsed = parseCommand(cmd, `${cmd}:<${l}@${d}>`);
        if (!parsed || !isMailbox(parsed.address)) return;
        expect(parsed.address).not.toMatch(/[\s<>\x00-\x1f\x7f\u200b]/);
        expect(parsed.address.split('@')).toHaveLength(2);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('recipient policy', () => {
  it('"%" or "!" in the local part is refused whatever the domain lists, unless policy.allowPercentHack', () => {
    fc.assert(
      fc.property(local, domain, fc.boolean(), (l, d, domainsSet) => {
        const address = `${l}@${d}`;
        const routed = /[%!]/.test(address.slice(0, address.lastIndexOf('@')));
        expect(routedLocalPart(address) !== null).toBe(routed);
        const p = policy({ allowedRecipientDomains: domainsSet ? [d.toLowerCase()] : null });
        if (routed) expect(checkRecipient(address, null, p).ok).toBe(false);
        // With the setting on, "%" and "!" are ordinary characters: the verdict is the one for any other local part.
        const plain = `${l.replace(/[%!]/g, 'x')}@${d}`;
        expect(checkRecipient(address, null, { ...p, allowPercentHack: true }).ok).toBe(checkRecipient(plain, null, { ...p, allowPercentHack: true }).ok);
      }),
      { numRuns: 1000 },
    );
  });

  it('domains and sender patterns compare without regard to case', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9.]{1,8}$/), domain, (l, d) => {
        const p = policy();
        expect(checkRecipient(`${l}@${d.toUpperCase()}`, null, p).ok).toBe(checkRecipient(`${l}@${d.toLowerCase()}`, null, p).ok);
        const patterns = [`@${d.toLowerCase()}`];
        expect(senderMatches(` ${l.toUpperCase()}@${d.toUpperCase()} `, patterns)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

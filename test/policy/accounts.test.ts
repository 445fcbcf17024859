/** The one order in which a message's Graph account is chosen: session rule, mapping, listener, mailbox domain, default. */

import { describe, expect, it } from 'vitest';
import { AccountSelector } from '../../src/policy/accounts.js';
import type { SenderRule } from '../../src/policy/senders.js';

const accounts = [
  { name: 'default', domains: [] },
  { name: 'fabrikam', domains: ['fabrikam.example'] },
  { name: 'sales', domains: [] },
];
const rule = (source: string, account: string | null): SenderRule => ({ subject: 's', source, allowedSenders: [], mailbox: null, allowedRecipientDomains: null, account });

describe('account selection', () => {
  const sel = new AccountSelector(accounts, 'default');
  const none = { account: null };

  it('each rule wins over the ones after it', () => {
    const all = { rule: rule('users[0]', 'sales'), mapping: 'fabrikam', listener: { account: 'default' }, mailbox: 'scans@fabrikam.example' };
    expect(sel.choose(all)).toEqual({ ok: true, account: 'sales', rule: 'user' });
    expect(sel.choose({ ...all, rule: rule('policy.networks[2]', 'sales') })).toEqual({ ok: true, account: 'sales', rule: 'network' });
    expect(sel.choose({ ...all, rule: rule('users[0]', null) })).toEqual({ ok: true, account: 'fabrikam', rule: 'mapping' });
    expect(sel.choose({ ...all, rule: null, mapping: undefined, listener: { account: 'sales' } })).toEqual({ ok: true, account: 'sales', rule: 'listener' });
    expect(sel.choose({ rule: null, mapping: undefined, listener: none, mailbox: 'Scans@FABRIKAM.example' })).toEqual({ ok: true, account: 'fabrikam', rule: 'domain' });
    expect(sel.choose({ rule: null, mapping: undefined, listener: none, mailbox: 'scans@contoso.example' })).toEqual({ ok: true, account: 'default', rule: 'default' });
  });

  it('without a default account, a mailbox no rule places is refused, saying why', () => {
    const noDefault = new AccountSelector(accounts.slice(1), null);
    const r = noDefault.choose({ rule: null, mapping: undefined, listener: none, mailbox: 'scans@contoso.example' });
    expect(r).toEqual({ ok: false, reason: expect.stringMatching(/^no Graph account for mailbox <scans@contoso.example>: no account lists contoso.example in its domains/) });
  });
});

/**
 * Which Graph account sends a message, decided at MAIL FROM and kept in its envelope. One order, the first
 * rule that names an account wins:
 *   1. the session's rule: the AUTH user's `account` (users[]), or the client network's (policy.networks[])
 *   2. the sender mapping that chose the mailbox (mailboxes.map entry's `account`)
 *   3. the listener's `account`
 *   4. the account whose `domains` hold the sending mailbox's domain
 *   5. the default account (the graph: section), when there is one
 */

import type { GraphAccount, ListenerConfig } from '../config/config.js';
import type { SenderRule } from './senders.js';

export type AccountRule = 'user' | 'network' | 'mapping' | 'listener' | 'domain' | 'default';
export type AccountChoice = { ok: true; account: string; rule: AccountRule } | { ok: false; reason: string };

export interface AccountInputs {
  /** The session's rights (a user's or a network's), if any. */
  rule: SenderRule | null;
  /** The account of the mailbox mapping that matched, if it names one. */
  mapping: string | undefined;
  listener: Pick<ListenerConfig, 'account'>;
  /** The sending mailbox (UPN). */
  mailbox: string;
}

export class AccountSelector {
  private readonly byDomain = new Map<string, string>();

  constructor(
    accounts: readonly Pick<GraphAccount, 'name' | 'domains'>[],
    private readonly defaultAccount: string | null,
  ) {
    for (const a of accounts) for (const d of a.domains) this.byDomain.set(d, a.name);
  }

  choose(x: AccountInputs): AccountChoice {
    if (x.rule?.account) return { ok: true, account: x.rule.account, rule: x.rule.source.startsWith('users') ? 'user' : 'network' };
    if (x.mapping) return { ok: true, account: x.mapping, rule: 'mapping' };
    if (x.listener.account) return { ok: true, account: x.listener.account, rule: 'listener' };
    const domain = x.mailbox.slice(x.mailbox.lastIndexOf('@') + 1).toLowerCase();
    const byDomain = this.byDomain.get(domain);
    if (byDomain) return { ok: true, account: byDomain, rule: 'domain' };
    if (this.defaultAccount) return { ok: true, account: this.defaultAccount, rule: 'default' };
    return { ok: false, reason: `no Graph account for mailbox <${x.mailbox}>: no account lists ${domain} in its domains, and neither the user, the network, the sender mapping nor the listener names one (there is no default account)` };
  }
}

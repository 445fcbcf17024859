/** Who may send what: allowed envelope and header senders, recipient domains and forced mailboxes, per user and per network. */

import type { NetworkRuleConfig, PolicyConfig, SenderRights, UserConfig } from '../config/front-door.js';
import type { MailboxConfig, SentItemsMode } from '../config/config.js';
import { resolveMailbox, type MailboxResolution } from './mailbox.js';
import { NetworkList } from './networks.js';

/** The rights that apply to one session, with the names the error texts use. */
export interface SenderRule extends SenderRights {
  /** e.g. `user "scanner1"` or `clients in 10.1.2.0/24`. */
  subject: string;
  /** Config path of the rule, e.g. `users[0]` or `policy.networks[1]`. */
  source: string;
}

export type Verdict = { ok: true } | { ok: false; reason: string };

const OK: Verdict = { ok: true };

const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~\\-\\u0080-\\uffff]+";
const LABEL = '[A-Za-z0-9\\u0080-\\uffff](?:[A-Za-z0-9\\u0080-\\uffff-]*[A-Za-z0-9\\u0080-\\uffff])?';
/**
 * An envelope address as RFC 5321 section 4.1.2 spells a Mailbox (UTF-8 allowed, RFC 6531): a Dot-string
 * local part, then a domain of two or more labels or an address literal. smtp-server is more lenient
 * (any local part without "@"); the relay is not, because envelope recipients reach Graph unquoted in a
 * Bcc: header, where a "," or ";" in the local part would make more addresses than the one checked.
 */
const MAILBOX = new RegExp(`^${ATEXT}(?:\\.${ATEXT})*@(?:${LABEL}(?:\\.${LABEL})+|\\[(?:IPv6:)?[0-9a-f:.]+\\])$`, 'i');

export function isMailbox(address: string): boolean {
  return MAILBOX.test(address);
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}

/** Patterns are lower-case addresses, "@domain" (that exact domain) or "<>" (the null sender). */
export function senderMatches(address: string, patterns: readonly string[]): boolean {
  const a = address.trim().toLowerCase();
  if (a === '') return patterns.includes('<>');
  return patterns.includes(a) || patterns.includes(`@${domainOf(a)}`);
}

export function userRule(users: readonly UserConfig[], username: string): SenderRule | null {
  const i = users.findIndex((u) => u.username === username);
  if (i < 0) return null;
  const u = users[i]!;
  return { subject: `user "${u.username}"`, source: `users[${i}]`, allowedSenders: u.allowedSenders, mailbox: u.mailbox, allowedRecipientDomains: u.allowedRecipientDomains, account: u.account };
}

/** policy.networks: the first entry whose range holds the client applies. */
export class NetworkRules {
  private readonly lists: { rule: NetworkRuleConfig; list: NetworkList; index: number }[];
  constructor(rules: readonly NetworkRuleConfig[]) {
    this.lists = rules.map((rule, index) => ({ rule, list: new NetworkList([rule.cidr]), index }));
  }

  find(address: string): SenderRule | null {
    const hit = this.lists.find((x) => x.list.contains(address));
    if (!hit) return null;
    const r = hit.rule;
    return { subject: `clients in ${r.cidr}`, source: `policy.networks[${hit.index}]`, allowedSenders: r.allowedSenders, mailbox: r.mailbox, allowedRecipientDomains: r.allowedRecipientDomains, account: r.account };
  }
}

export function checkEnvelopeSender(address: string, rule: SenderRule | null): Verdict {
  if (!rule || senderMatches(address, rule.allowedSenders)) return OK;
  return { ok: false, reason: `Sender <${address}> is not allowed for ${rule.subject} (${rule.source}.allowedSenders)` };
}

/** Every From: address must be one the rule allows as envelope sender, so a device cannot write a CEO's From. */
export function checkHeaderFrom(from: readonly string[], rule: SenderRule | null, policy: PolicyConfig): Verdict {
  if (!rule || !policy.checkHeaderFrom) return OK;
  if (from.length === 0) return { ok: false, reason: `The message has no From: address; ${rule.subject} must use one of ${rule.source}.allowedSenders (policy.checkHeaderFrom)` };
  for (const a of from) {
    if (!senderMatches(a, rule.allowedSenders)) return { ok: false, reason: `Header From <${a}> is not allowed for ${rule.subject} (${rule.source}.allowedSenders, policy.checkHeaderFrom)` };
  }
  return OK;
}

/**
 * "%" and "!" in a local part are the old ways to route through a relay (user%other.example@relay.example,
 * other.example!user@relay.example): a domain check on the part after "@" would pass an address a mail
 * system may still deliver elsewhere. Refused unless policy.allowPercentHack (Postfix: allow_percent_hack).
 */
export function routedLocalPart(address: string): string | null {
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  const m = /[%!]/.exec(local);
  return m ? m[0] : null;
}

/** Both lists apply when set: the global one and the sender's own; routing syntax in the local part first. */
export function checkRecipient(address: string, rule: SenderRule | null, policy: PolicyConfig): Verdict {
  const routed = policy.allowPercentHack ? null : routedLocalPart(address);
  if (routed) {
    return { ok: false, reason: `Recipient <${address}> is not allowed: "${routed}" in the local part routes mail onward through the relay (policy.allowPercentHack)` };
  }
  const domain = domainOf(address);
  if (policy.allowedRecipientDomains && !policy.allowedRecipientDomains.includes(domain)) {
    return { ok: false, reason: `Recipient <${address}> is not allowed: domain ${domain} is not in policy.allowedRecipientDomains` };
  }
  if (rule?.allowedRecipientDomains && !rule.allowedRecipientDomains.includes(domain)) {
    return { ok: false, reason: `Recipient <${address}> is not allowed for ${rule.subject}: domain ${domain} is not in ${rule.source}.allowedRecipientDomains` };
  }
  return OK;
}

export type SessionMailbox = MailboxResolution | { ok: true; mailbox: string; rule: 'forced'; sentItems?: SentItemsMode };

/** A rule's forced mailbox wins; otherwise resolveMailbox (mailboxes.*) decides as usual. */
export function mailboxForSession(mailFrom: string, rule: SenderRule | null, cfg: MailboxConfig): SessionMailbox {
  if (rule?.mailbox) return { ok: true, mailbox: rule.mailbox, rule: 'forced' };
  return resolveMailbox(mailFrom, cfg);
}

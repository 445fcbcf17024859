/** Mailbox resolution: which /users/{upn} sends a message, decided from its envelope sender. */

import type { MailboxConfig, RewriteFromMode, SentItemsMode } from '../config/config.js';

export type MailboxResolution =
  | {
      ok: true;
      mailbox: string;
      rule: 'map-address' | 'map-domain' | 'map-null-sender' | 'envelope-sender' | 'fallback';
      /** The matched mapping's Sent Items override; absent means delivery.sentItems applies. */
      sentItems?: SentItemsMode;
      /** The matched mapping's From rewrite override; absent means mailboxes.rewriteFrom applies. */
      rewriteFrom?: RewriteFromMode;
      /** The matched mapping's Graph account (src/policy/accounts.ts). */
      account?: string;
    }
  | { ok: false; reason: string };

/** Rules in order: explicit address mapping, "@domain" mapping, the sender itself, the fallback mailbox. */
export function resolveMailbox(mailFrom: string, cfg: MailboxConfig): MailboxResolution {
  const sender = mailFrom.trim().toLowerCase();
  if (sender === '') {
    const mapped = cfg.map['<>'];
    if (mapped) return withSentItems({ ok: true, mailbox: mapped, rule: 'map-null-sender' }, cfg, '<>');
    if (cfg.fallback) return { ok: true, mailbox: cfg.fallback, rule: 'fallback' };
    return { ok: false, reason: 'the null sender <> has no mailbox: map "<>" or set mailboxes.fallback' };
  }
  const byAddress = cfg.map[sender];
  if (byAddress) return withSentItems({ ok: true, mailbox: byAddress, rule: 'map-address' }, cfg, sender);
  const domain = sender.slice(sender.lastIndexOf('@') + 1);
  const byDomain = cfg.map[`@${domain}`];
  if (byDomain) return withSentItems({ ok: true, mailbox: byDomain, rule: 'map-domain' }, cfg, `@${domain}`);
  if (cfg.useEnvelopeSender && (cfg.senderDomains.includes(domain) || cfg.senderDomains.includes('*'))) {
    return { ok: true, mailbox: sender, rule: 'envelope-sender' };
  }
  if (cfg.fallback) return { ok: true, mailbox: cfg.fallback, rule: 'fallback' };
  const why = !cfg.useEnvelopeSender
    ? 'mailboxes.useEnvelopeSender is off'
    : cfg.senderDomains.length === 0
      ? 'mailboxes.senderDomains is empty'
      : `its domain is not in mailboxes.senderDomains (${cfg.senderDomains.join(', ')})`;
  return { ok: false, reason: `no mailbox for sender <${mailFrom}>: it matches no mailboxes.map entry, ${why}, and no mailboxes.fallback is set` };
}

/** The mapping's own overrides, when it has any. */
function withSentItems<T extends MailboxResolution & { ok: true }>(res: T, cfg: MailboxConfig, key: string): T {
  const sentItems = cfg.sentItems?.[key];
  const rewriteFrom = cfg.rewriteFromFor?.[key];
  const account = cfg.accountFor?.[key];
  return { ...res, ...(sentItems ? { sentItems } : {}), ...(rewriteFrom ? { rewriteFrom } : {}), ...(account ? { account } : {}) };
}

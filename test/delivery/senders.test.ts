/** GraphSender: each message through the adapter of the account in its envelope; an account no longer configured keeps the message. */

import { describe, expect, it } from 'vitest';
import type { GraphAdapter, OutgoingMessage, SendResult } from '../../src/graph/adapter.js';
import { GraphSender } from '../../src/delivery/senders.js';
import type { MailboxConfig } from '../../src/config/config.js';
import type { Envelope } from '../../src/spool/envelope.js';

const mailboxes: MailboxConfig = { map: {}, sentItems: {}, rewriteFromFor: {}, accountFor: {}, rewriteFrom: 'mailbox', replyToOriginalFrom: true, useEnvelopeSender: true, senderDomains: ['contoso.example'], fallback: null };
const env = (account?: string): Envelope => ({ version: 1, id: 'q1', mailFrom: 'a@contoso.example', rcptTo: ['b@contoso.example'], mailbox: 'a@contoso.example', ...(account ? { account } : {}), bcc: [], clientAddress: '127.0.0.1', clientHostname: 'x', helo: 'x', listener: 'default', receivedAt: new Date().toISOString(), size: 1, attempts: 1, nextAttemptAt: new Date().toISOString(), lastError: null });
const data = { file: '/nonexistent', size: 1, bytes: Buffer.from('x') };

describe('GraphSender', () => {
  it('sends through the envelope’s account; an envelope without one (an older spool) is the default account’s', async () => {
    const used: string[] = [];
    const adapter = (name: string): GraphAdapter => ({ send: async (m: OutgoingMessage): Promise<SendResult> => (used.push(`${name}:${m.mailbox}`), { verdict: { kind: 'delivered' }, route: 'mime', status: 202 }) }) as unknown as GraphAdapter;
    const sender = new GraphSender((name) => (['default', 'fabrikam'].includes(name) ? adapter(name) : null), { sentItems: 'keep', mailboxes });
    await sender.send(env('fabrikam'), data);
    await sender.send(env(), data);
    expect(used).toEqual(['fabrikam:a@contoso.example', 'default:a@contoso.example']);
  });

  it('keeps a message whose account is no longer configured (transient), saying which', async () => {
    const sender = new GraphSender(() => null, { sentItems: 'keep', mailboxes });
    expect(await sender.send(env('gone'), data)).toMatchObject({ verdict: { kind: 'transient', reason: 'unknown-account' }, message: 'no Graph account "gone" in the configuration (the message was accepted for it)' });
  });
});

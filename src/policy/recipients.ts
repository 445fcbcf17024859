/** Envelope versus headers: whom Graph will deliver to, which envelope recipients need a Bcc, and the rules on all of them. */

import type { PolicyConfig } from '../config/front-door.js';
import { checkRecipient, type SenderRule, type Verdict } from './senders.js';

export interface RecipientPlan {
  /** Envelope recipients absent from To/Cc/Bcc headers: delivery adds them in a Bcc: header. */
  bcc: string[];
  /** Header To/Cc/Bcc recipients that are not envelope recipients (lower-cased): Graph delivers to them too. */
  headerOnly: string[];
}

export function planRecipients(envelopeRcpts: readonly string[], headerTo: readonly string[], headerCc: readonly string[], headerBcc: readonly string[]): RecipientPlan {
  // Plain loops and two sets: this runs for every accepted message.
  const inHeaders = new Set<string>();
  for (const list of [headerTo, headerCc, headerBcc]) for (const a of list) inHeaders.add(a.toLowerCase());
  const inEnvelope = new Set<string>();
  const bcc: string[] = [];
  for (const r of envelopeRcpts) {
    const k = r.toLowerCase();
    if (inEnvelope.has(k)) continue;
    inEnvelope.add(k);
    if (!inHeaders.has(k)) bcc.push(r);
  }
  const headerOnly: string[] = [];
  for (const a of inHeaders) if (!inEnvelope.has(a)) headerOnly.push(a);
  return { bcc, headerOnly };
}

/** An address Graph will deliver to, with where the message names it (for the reply that refuses it). */
export interface GraphRecipient {
  address: string;
  field: 'RCPT TO' | 'To' | 'Cc' | 'Bcc';
}

/**
 * Graph delivers to every To/Cc/Bcc address of the final message (the relay's Bcc included), that is the
 * envelope plus the headers. Each is checked against the same rules as RCPT TO, and their number against
 * maxRecipients; the first violation names the address, the header that holds it and the rule.
 */
export function checkGraphRecipients(recipients: readonly GraphRecipient[], rule: SenderRule | null, policy: PolicyConfig, maxRecipients: number): Verdict {
  if (recipients.length > maxRecipients) {
    return { ok: false, reason: `Too many recipients: Graph would deliver to ${recipients.length} addresses (envelope and To/Cc/Bcc headers), the limit is ${maxRecipients} (limits.maxRecipients)` };
  }
  for (const r of recipients) {
    const v = checkRecipient(r.address, rule, policy);
    if (!v.ok) return r.field === 'RCPT TO' ? v : { ok: false, reason: `${v.reason} (named in the ${r.field}: header; Graph delivers to every To/Cc/Bcc address)` };
  }
  return { ok: true };
}

/** Envelope first, then header addresses not already named; case-insensitive, each once. */
export function graphRecipients(envelope: readonly string[], to: readonly string[], cc: readonly string[], bcc: readonly string[]): GraphRecipient[] {
  const seen = new Set<string>();
  const out: GraphRecipient[] = [];
  const add = (list: readonly string[], field: GraphRecipient['field']): void => {
    for (const a of list) {
      const k = a.toLowerCase();
      if (seen.has(k)) continue;
      seen.add(k);
      out.push({ address: a, field });
    }
  };
  add(envelope, 'RCPT TO');
  add(to, 'To');
  add(cc, 'Cc');
  add(bcc, 'Bcc');
  return out;
}

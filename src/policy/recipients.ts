/** Envelope versus headers: who Graph would deliver to, and which envelope recipients need a Bcc. */

export interface RecipientPlan {
  /** Envelope recipients absent from To/Cc/Bcc headers: delivery adds them in a Bcc: header. */
  bcc: string[];
  /** Header To/Cc/Bcc recipients that are not envelope recipients: Graph delivers to them too. */
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

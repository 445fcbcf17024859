/** Envelope versus headers: who Graph would deliver to, and which envelope recipients need a Bcc. */

export interface RecipientPlan {
  /** Envelope recipients absent from To/Cc/Bcc headers: delivery adds them in a Bcc: header. */
  bcc: string[];
  /** Header To/Cc/Bcc recipients that are not envelope recipients: Graph delivers to them too. */
  headerOnly: string[];
}

export function planRecipients(envelopeRcpts: readonly string[], headerTo: readonly string[], headerCc: readonly string[], headerBcc: readonly string[]): RecipientPlan {
  const inHeaders = new Set([...headerTo, ...headerCc, ...headerBcc].map((a) => a.toLowerCase()));
  const inEnvelope = new Set(envelopeRcpts.map((a) => a.toLowerCase()));
  const bcc: string[] = [];
  const seen = new Set<string>();
  for (const r of envelopeRcpts) {
    const k = r.toLowerCase();
    if (!inHeaders.has(k) && !seen.has(k)) bcc.push(r);
    seen.add(k);
  }
  const headerOnly = [...new Set([...headerTo, ...headerCc, ...headerBcc].map((a) => a.toLowerCase()))].filter((a) => !inEnvelope.has(a));
  return { bcc, headerOnly };
}

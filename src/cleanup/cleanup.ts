/**
 * The header section a message enters the queue with (Postfix's cleanup): every header-derived decision on
 * the whole section, recipient policy on what Graph will deliver to, the From Graph will accept, the trace header.
 */

import type { HeaderOnlyMode, RewriteFromMode } from '../config/config.js';
import type { PolicyConfig } from '../config/front-door.js';
import { bccHeader } from '../mime/compose.js'; // moves to mime/ once the route work lands
import { fieldValue, formatMailbox, mailboxes, newField, readHeaderFacts, rebuild, renamed, splitFields, type FieldEdit, type HeaderField } from '../mime/headers.js';
import { newMessageId } from '../mime/message-id.js';
import { receivedHeader, type ReceivedInfo } from '../mime/received.js';
import { checkGraphRecipients, graphRecipients, planRecipients } from '../policy/recipients.js';
import { checkHeaderFrom, type SenderRule } from '../policy/senders.js';
import { rewriteFrom, type FromRewrite } from './from-rewrite.js';

export interface CleanupSettings {
  maxHeaderSize: number;
  maxReceivedHeaders: number;
  maxRecipients: number;
  policy: PolicyConfig;
  headerOnlyRecipients: HeaderOnlyMode;
  rewriteFrom: RewriteFromMode;
  replyToOriginalFrom: boolean;
}

export interface CleanupInput {
  /** The client's header section (without the empty line), or its first bytes when it had not ended by maxHeaderSize. */
  block: Buffer;
  /** False when `block` is only the first bytes of an unfinished section. */
  complete: boolean;
  rcptTo: readonly string[];
  mailbox: string;
  rule: SenderRule | null;
  received: Omit<ReceivedInfo, 'recipients'>;
  settings: CleanupSettings;
}

/** A refusal: the SMTP reply and the short reason for logs and metrics. */
export interface Refusal {
  ok: false;
  reason: string;
  code: number;
  text: string;
}

export interface Cleaned {
  ok: true;
  /** Received + the rewritten fields + the empty line (+ what followed a line that ended the section): what the spool file starts with. */
  header: Buffer;
  /** The section ended at a line that is not a header field; the relay put the empty line there. */
  endedAtNonField: boolean;
  /** Envelope recipients the headers do not name: delivery adds them in a Bcc: header. */
  bcc: string[];
  /** Header-only addresses Graph delivers to (deliver mode), or removed from the headers (envelope mode). */
  headerOnly: string[];
  headerOnlyRemoved: boolean;
  /** How many addresses Graph will deliver to. */
  graphRecipients: number;
  /** The message's Message-ID: the client's, or the one cleanup added (`messageIdAdded`). */
  messageId: string;
  messageIdAdded: boolean;
  from: FromRewrite | null;
}

const CRLF = Buffer.from('\r\n');

export function cleanupHeaders(input: CleanupInput): Refusal | Cleaned {
  const s = input.settings;
  const tooBig = (bytes: number, what: string): Refusal => ({
    ok: false,
    reason: 'header-size',
    code: 552,
    text: `5.3.4 Header size exceeds fixed maximum size: ${what} ${bytes} bytes, the limit is ${s.maxHeaderSize} (limits.maxHeaderSize; Exchange Online refuses more than 256 KB)`,
  });
  const section = sectionOf(input.block, input.complete);
  if (!section) return tooBig(input.block.length, 'the header section has over');
  const { block, fields, rest } = section;
  if (block.length > s.maxHeaderSize) return tooBig(block.length, 'the header section has');
  const facts = readHeaderFacts(block, fields);
  if (facts.receivedCount > s.maxReceivedHeaders) {
    return { ok: false, reason: 'loop', code: 554, text: `5.4.6 Mail loop detected: ${facts.receivedCount} Received headers, the limit is ${s.maxReceivedHeaders}` };
  }
  const fromVerdict = checkHeaderFrom(facts.from, input.rule, s.policy);
  if (!fromVerdict.ok) return { ok: false, reason: 'header-from-policy', code: 550, text: `5.7.1 ${fromVerdict.reason}` };

  const plan = planRecipients(input.rcptTo, facts.to, facts.cc, facts.bcc);
  const edits = new Map<HeaderField, FieldEdit>();
  let { to, cc, bcc } = facts;
  if (plan.headerOnly.length > 0 && s.headerOnlyRecipients === 'reject') {
    return {
      ok: false,
      reason: 'header-only-recipients',
      code: 550,
      text: `5.7.1 The message headers name ${plan.headerOnly.length} recipient(s) that are not envelope recipients (e.g. <${plan.headerOnly[0]}>); Graph would deliver to them too (delivery.headerOnlyRecipients: reject)`,
    };
  }
  if (plan.headerOnly.length > 0 && s.headerOnlyRecipients === 'envelope') {
    const keep = new Set(input.rcptTo.map((r) => r.toLowerCase()));
    keepOnly(block, fields, keep, edits);
    ({ to, cc, bcc } = { to: to.filter((a) => keep.has(a.toLowerCase())), cc: cc.filter((a) => keep.has(a.toLowerCase())), bcc: bcc.filter((a) => keep.has(a.toLowerCase())) });
  }
  const recipients = graphRecipients(input.rcptTo, to, cc, bcc);
  const rcptVerdict = checkGraphRecipients(recipients, input.rule, s.policy, s.maxRecipients);
  if (!rcptVerdict.ok) return { ok: false, reason: 'recipient-policy', code: 550, text: `5.7.1 ${rcptVerdict.reason}` };

  const from = s.rewriteFrom === 'never' ? null : rewriteFrom(block, fields, input.mailbox, { hasReplyTo: facts.replyTo, replyToOriginalFrom: s.replyToOriginalFrom });
  if (from) for (const [f, e] of from.edits) edits.set(f, e);
  // Named only when Graph delivers to exactly one address: more would tell To/Cc recipients who got a Bcc.
  const received = Buffer.from(receivedHeader({ ...input.received, recipients: recipients.map((r) => r.address) }), 'latin1');
  // No Message-ID: one is added at the end of the section, as Postfix's cleanup does; one given stays as it is.
  const id = withMessageId(edits.size ? rebuild(block, fields, edits) : block, facts.messageId, input.received);
  const outgoing = received.length + id.fields.length + Buffer.byteLength(bccHeader(plan.bcc));
  if (outgoing > s.maxHeaderSize) return tooBig(outgoing, 'with the Received and Bcc fields the relay adds, the header section has');
  return {
    ok: true,
    header: Buffer.concat(rest ? [received, id.fields, CRLF, rest] : [received, id.fields, CRLF]),
    endedAtNonField: rest !== null,
    bcc: plan.bcc,
    headerOnly: plan.headerOnly,
    headerOnlyRemoved: s.headerOnlyRecipients === 'envelope' && plan.headerOnly.length > 0,
    graphRecipients: recipients.length,
    messageId: id.messageId,
    messageIdAdded: id.added,
    from,
  };
}

/** The fields with a Message-ID: as they are when they have one, else with one added on a line of its own. */
function withMessageId(fieldsOut: Buffer, given: string | null, r: CleanupInput['received']): { fields: Buffer; messageId: string; added: boolean } {
  if (given !== null) return { fields: fieldsOut, messageId: given, added: false };
  const messageId = newMessageId(r.queueId, r.date, r.byHost);
  // Even after a last field that lacks its line end.
  const open = fieldsOut.length > 0 && fieldsOut[fieldsOut.length - 1] !== 0x0a;
  return { fields: Buffer.concat([fieldsOut, Buffer.from(`${open ? '\r\n' : ''}Message-ID: ${messageId}\r\n`, 'latin1')]), messageId, added: true };
}

/**
 * Envelope mode: To/Cc/Bcc keep only envelope recipients, so Graph delivers to exactly those. To and Cc as
 * the client wrote them stay in X-Original-To/-Cc (recipients could see them anyway); a Bcc never does.
 */
function keepOnly(block: Buffer, fields: readonly HeaderField[], keep: ReadonlySet<string>, edits: Map<HeaderField, FieldEdit>): void {
  for (const f of fields) {
    if (f.key !== 'to' && f.key !== 'cc' && f.key !== 'bcc') continue;
    const list = mailboxes(fieldValue(block, f));
    const kept = list.filter((m) => keep.has(m.address.toLowerCase()));
    if (kept.length === list.length) continue;
    const replace = kept.length ? [newField(f.name, kept.map((m) => formatMailbox(m.name, m.address)).join(', '))] : [];
    if (f.key !== 'bcc') replace.push(renamed(block, f, f.key === 'to' ? 'X-Original-To' : 'X-Original-Cc'));
    edits.set(f, { replace });
  }
}

/**
 * The header section proper. A line that is neither a field nor a continuation ends it, as mail parsers read
 * it; the relay then puts the empty line there (as Postfix's cleanup does), so Exchange reads what policy
 * read. Null when an unfinished section (past the limit) shows no such line: it is too big.
 */
function sectionOf(collected: Buffer, complete: boolean): { block: Buffer; fields: HeaderField[]; rest: Buffer | null } | null {
  const all = splitFields(collected);
  // In an unfinished section the last line may be cut short: only whole lines count.
  const stop = all.findIndex((f) => !f.key && (complete || collected[f.end - 1] === 0x0a));
  if (stop === -1) return complete ? { block: collected, fields: all, rest: null } : null;
  const at = all[stop]!.start;
  return { block: collected.subarray(0, at), fields: all.slice(0, stop), rest: collected.subarray(at) };
}

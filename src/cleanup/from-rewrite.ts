/** From that Graph will accept: a From or Sender that is not the sending mailbox becomes it (Postfix's sender_canonical_maps, done at cleanup). */

import { decodeDisplayName, fieldValue, formatMailbox, mailboxes, newField, renamed, type FieldEdit, type HeaderField } from '../mime/headers.js';

export interface FromRewrite {
  edits: Map<HeaderField, FieldEdit>;
  /** The From and Sender addresses that were replaced, for the log. */
  originalFrom: string[];
  originalSender: string[];
  replyToAdded: boolean;
}

export interface FromRewriteOptions {
  /** The message names a Reply-To already (it is never replaced). */
  hasReplyTo: boolean;
  replyToOriginalFrom: boolean;
}

type Mailbox = { name: string; address: string };

/**
 * Exchange submits as the mailbox in the URL and refuses (ErrorSendAsDenied) a From or Sender the mailbox may
 * not send as, and operators report the same for a display name holding an `@`. So, unless both already are
 * the mailbox (then the message stays byte-exact and this returns null):
 * - From becomes `"device name" <mailbox>` (the device's address as the name when it gave none, `@` written
 *   as " at "); every original From field is kept as X-Original-From;
 * - the original From addresses go to Reply-To when the message has none (replies reach the device's owner);
 * - a Sender that is not the mailbox is kept as X-Original-Sender (Exchange reads Sender as "on behalf of").
 */
export function rewriteFrom(block: Buffer, fields: readonly HeaderField[], mailbox: string, opts: FromRewriteOptions): FromRewrite | null {
  const mbx = mailbox.toLowerCase();
  const isMailbox = (m: Mailbox): boolean => m.address.toLowerCase() === mbx && !(m.name.includes('=?') ? decodeDisplayName(m.name) : m.name).includes('@');
  if (alreadyTheMailbox(block, fields, isMailbox)) return null;
  const fromFields = fields.filter((f) => f.key === 'from');
  const senderFields = fields.filter((f) => f.key === 'sender');
  const from = fromFields.flatMap((f) => mailboxes(fieldValue(block, f)));
  const sender = senderFields.flatMap((f) => mailboxes(fieldValue(block, f)));
  // No From at all is left alone: Graph then sends as the mailbox itself.
  const fromOk = fromFields.length === 0 || (fromFields.length === 1 && from.length === 1 && isMailbox(from[0]!));
  const senderOk = sender.every(isMailbox) && (senderFields.length === 0 || sender.length > 0);
  if (fromOk && senderOk) return null;

  const edits = new Map<HeaderField, FieldEdit>();
  let replyToAdded = false;
  if (!fromOk) {
    const first = from[0];
    const display = displayFor(first);
    const replyTo = from.filter((m) => m.address.toLowerCase() !== mbx);
    fromFields.forEach((f, i) => {
      const kept = renamed(block, f, 'X-Original-From');
      if (i > 0) return edits.set(f, { replace: [kept] });
      const after: Buffer[] = [kept];
      if (!opts.hasReplyTo && opts.replyToOriginalFrom && replyTo.length > 0) {
        after.push(newField('Reply-To', replyTo.map((m) => formatMailbox(decodeDisplayName(m.name), m.address)).join(', ')));
        replyToAdded = true;
      }
      edits.set(f, { replace: [newField('From', formatMailbox(display, mailbox))], after });
    });
  }
  if (!senderOk) for (const f of senderFields) edits.set(f, { replace: [renamed(block, f, 'X-Original-Sender')] });
  return {
    edits,
    originalFrom: fromOk ? [] : from.map((m) => m.address),
    originalSender: senderOk ? [] : sender.map((m) => m.address),
    replyToAdded,
  };
}

/** The common case, checked without building lists: one From, no Sender, and it is the mailbox. */
function alreadyTheMailbox(block: Buffer, fields: readonly HeaderField[], isMailbox: (m: Mailbox) => boolean): boolean {
  let from: HeaderField | null = null;
  for (const f of fields) {
    if (f.key === 'sender' || (f.key === 'from' && from)) return false;
    if (f.key === 'from') from = f;
  }
  if (!from) return false;
  const list = mailboxes(fieldValue(block, from));
  return list.length === 1 && isMailbox(list[0]!);
}

/** The device's name, else its address; never with an `@`, which Exchange may read as an address. */
function displayFor(m: Mailbox | undefined): string {
  if (!m) return '';
  const name = decodeDisplayName(m.name).trim() || m.address;
  return name.replace(/@/g, ' at ').replace(/\s+/g, ' ').slice(0, 200).trim();
}

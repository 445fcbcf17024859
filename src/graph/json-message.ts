/** Builds Graph's JSON `message` resource from a spooled MIME message, for JSON sendMail and JSON drafts. */

import { readSlice } from '../spool/read-range.js';
import { simpleParser, type AddressObject, type EmailAddress } from 'mailparser';
import type { MimePart } from './mime-tree.js';
import type { MessageParts } from './mime-attachments.js';

type Recipient = { emailAddress: { address: string; name?: string } };

const PARSE_OPTS = { skipImageLinks: true, skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true } as const;

function flatten(list: EmailAddress[]): EmailAddress[] {
  return list.flatMap((a) => (a.group ? flatten(a.group) : [a]));
}

function recipients(field: AddressObject | AddressObject[] | undefined): Recipient[] {
  if (!field) return [];
  const objs = Array.isArray(field) ? field : [field];
  return flatten(objs.flatMap((o) => o.value))
    .filter((a) => a.address)
    .map((a) => ({ emailAddress: a.name ? { address: a.address!, name: a.name } : { address: a.address! } }));
}

/** A body part decoded by mailparser (transfer encoding and charset), parsed on its own so nothing else is read. */
async function bodyText(file: string, part: MimePart): Promise<string> {
  // The root's own header is the message header: parse from its start as well, it is all one part.
  const raw = await readSlice(file, part.headerStart, part.bodyEnd);
  const parsed = await simpleParser(raw, PARSE_OPTS);
  return part.contentType === 'text/html' ? (parsed.html || '') : (parsed.text ?? '');
}

export interface JsonMessageOptions {
  /** Envelope recipients not named in To/Cc: Graph gets them as bcc. */
  extraBcc: readonly string[];
}

/**
 * Subject, body (HTML preferred; Graph takes one body), from, replyTo, to/cc/bcc, importance, read receipt
 * and the x- headers (Graph accepts only those as internetMessageHeaders). Attachments are added by the caller.
 */
export async function buildJsonMessage(file: string, root: MimePart, parts: MessageParts, opts: JsonMessageOptions): Promise<Record<string, unknown>> {
  const head = await simpleParser(Buffer.from(`${root.header}\r\n`, 'latin1'), PARSE_OPTS);
  const message: Record<string, unknown> = { subject: head.subject ?? '' };
  if (parts.html) message['body'] = { contentType: 'html', content: await bodyText(file, parts.html) };
  else if (parts.text) message['body'] = { contentType: 'text', content: await bodyText(file, parts.text) };
  else message['body'] = { contentType: 'text', content: '' };

  const from = recipients(head.from)[0];
  if (from) message['from'] = from;
  const replyTo = recipients(head.replyTo);
  if (replyTo.length) message['replyTo'] = replyTo;
  const to = recipients(head.to);
  const cc = recipients(head.cc);
  const bcc = recipients(head.bcc);
  const named = new Set([...to, ...cc, ...bcc].map((r) => r.emailAddress.address.toLowerCase()));
  for (const a of opts.extraBcc) if (!named.has(a.toLowerCase())) bcc.push({ emailAddress: { address: a } });
  message['toRecipients'] = to;
  message['ccRecipients'] = cc;
  message['bccRecipients'] = bcc;

  // Raw header lines: mailparser folds Importance/X-Priority into a priority it does not expose in its types.
  const raw = new Map<string, string>();
  for (const h of head.headerLines) if (!raw.has(h.key)) raw.set(h.key, h.line.slice(h.line.indexOf(':') + 1).trim());
  const importance = importanceOf(raw);
  if (importance) message['importance'] = importance;
  if (raw.has('disposition-notification-to')) message['isReadReceiptRequested'] = true;
  const xHeaders = head.headerLines
    // X-Priority is carried as importance; Graph refuses anything but x- headers here.
    .filter((h) => h.key.startsWith('x-') && h.key !== 'x-priority' && h.key !== 'x-msmail-priority')
    .map((h) => {
      const i = h.line.indexOf(':');
      return { name: h.line.slice(0, i).trim(), value: h.line.slice(i + 1).replace(/\r?\n[ \t]+/g, ' ').trim() };
    })
    .filter((h) => h.value !== '');
  if (xHeaders.length) message['internetMessageHeaders'] = xHeaders;
  return message;
}

/** Importance: high/low, or X-Priority 1-2 / 4-5 (what Outlook writes and reads). Normal is Graph's default. */
function importanceOf(headers: Map<string, string>): 'high' | 'low' | null {
  const imp = String(headers.get('importance') ?? '').toLowerCase();
  if (imp === 'high' || imp === 'low') return imp;
  const xp = /^\s*(\d)/.exec(String(headers.get('x-priority') ?? ''));
  if (xp) {
    const n = Number(xp[1]);
    if (n <= 2) return 'high';
    if (n >= 4) return 'low';
  }
  return null;
}

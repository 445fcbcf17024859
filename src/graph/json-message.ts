/** Builds Graph's JSON `message` resource from a spooled MIME message, for JSON sendMail and JSON drafts. */

import { readSlice } from '../mime/message-file.js';
import { simpleParser, type AddressObject, type EmailAddress } from 'mailparser';
import { internetMessageId } from '../mime/message-id.js';
import { headerText, type MimePart } from '../mime/mime-tree.js';
import type { MessageParts } from '../mime/mime-attachments.js';

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

/** A parameter value fit to write back into a header unquoted-safe: RFC 2045 token characters only. */
const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/**
 * The part's header as the scan read it (media type, charset, format=flowed, transfer encoding), not as
 * the client wrote it: mailparser takes a malformed Content-Type (e.g. "text") for an attachment, where
 * the scan already fell back to text/plain as RFC 2045 section 5.2 says.
 */
function readHeader(part: MimePart): Buffer {
  const params = ['charset', 'format', 'delsp']
    .filter((k) => TOKEN.test(part.params[k] ?? ''))
    .map((k) => `; ${k}=${part.params[k]}`)
    .join('');
  const encoding = TOKEN.test(part.transferEncoding) ? `Content-Transfer-Encoding: ${part.transferEncoding}\r\n` : '';
  return Buffer.from(`Content-Type: ${part.contentType}${params}\r\n${encoding}\r\n`, 'latin1');
}

/** A body part decoded by mailparser (transfer encoding and charset), parsed on its own so nothing else is read. */
async function bodyText(file: string, part: MimePart): Promise<string> {
  const body = await readSlice(file, part.bodyStart, part.bodyEnd);
  const parsed = await simpleParser(Buffer.concat([readHeader(part), body]), PARSE_OPTS);
  return part.contentType === 'text/html' ? (parsed.html || '') : (parsed.text ?? '');
}

export interface JsonMessageOptions {
  /** Envelope recipients not named in To/Cc: Graph gets them as bcc. */
  extraBcc: readonly string[];
  /**
   * Set internetMessageId from the Message-ID: for a draft, where Graph documents it as writable (isDraft),
   * and where the Sent Items look-up needs it. Not for JSON sendMail: it keeps no copy to look up, and
   * Exchange refuses InternetMessageId on a message sent without saving (EWS: ErrorInvalidPropertySet).
   */
  internetMessageId: boolean;
}

/**
 * Subject, body (HTML preferred; Graph takes one body), from, replyTo, to/cc/bcc, importance, read receipt,
 * the Message-ID (drafts only) and the x- headers (Graph accepts only those as internetMessageHeaders). Attachments are added by the caller.
 */
export async function buildJsonMessage(file: string, root: MimePart, parts: MessageParts, opts: JsonMessageOptions): Promise<Record<string, unknown>> {
  // mailparser reads header bytes as UTF-8 only: a latin1 subject or name would come out as U+FFFD.
  const head = await simpleParser(Buffer.from(`${headerText(root.header)}\r\n`, 'utf8'), PARSE_OPTS);
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
  // A draft keeps the Message-ID: recipients thread by it, and the Sent Items look-up finds the sent draft by it.
  const messageId = opts.internetMessageId ? internetMessageId(raw.get('message-id')) : null;
  if (messageId) message['internetMessageId'] = messageId;
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

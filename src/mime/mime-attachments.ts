/** Which parts of a message are its bodies and which are attachments, with the names and flags Graph wants. */

import { libmime } from './libmime.js';
import type { MimePart } from './mime-tree.js';
import { leaves } from './mime-tree.js';

export interface AttachmentInfo {
  part: MimePart;
  /** Decoded (RFC 2231/2047) file name, or one made up from the media type. */
  name: string;
  contentType: string;
  isInline: boolean;
  contentId: string | null;
  /** Bytes the part takes in the message, delimiter line included: what removing it saves. */
  rawSize: number;
}

/** The Graph fileAttachment resource for an attachment and its decoded bytes. */
export function fileAttachment(a: AttachmentInfo, bytes: Buffer): Record<string, unknown> {
  return {
    '@odata.type': '#microsoft.graph.fileAttachment',
    name: a.name,
    contentType: a.contentType,
    isInline: a.isInline,
    ...(a.contentId ? { contentId: a.contentId } : {}),
    contentBytes: bytes.toString('base64'),
  };
}

/** The createUploadSession body for an attachment of `size` decoded bytes. */
export function uploadSessionItem(a: AttachmentInfo, size: number): Record<string, unknown> {
  return { AttachmentItem: { attachmentType: 'file', name: a.name, size, contentType: a.contentType, isInline: a.isInline, ...(a.contentId ? { contentId: a.contentId } : {}) } };
}

/**
 * A calendar invitation (iMIP, RFC 6047): text/calendar with a method parameter, which that RFC requires.
 * Graph turns it into a meeting request only when it reads it from MIME; a text/calendar without a method
 * is a plain .ics file.
 */
export function isCalendarInvite(part: MimePart): boolean {
  return part.contentType === 'text/calendar' && Boolean(part.params['method']);
}

/** A Content-ID as cid: URLs name it (RFC 2392): without angle brackets, compared case-insensitively. */
export function contentIdKey(id: string): string {
  return id.trim().replace(/^<|>$/g, '').toLowerCase();
}

export interface MessageParts {
  text: MimePart | null;
  html: MimePart | null;
  attachments: AttachmentInfo[];
}

function fileName(part: MimePart): string | null {
  const n = part.dispositionParams['filename'] ?? part.params['name'];
  return n && n.trim() ? n.trim() : null;
}

function isBodyCandidate(part: MimePart): boolean {
  return (part.contentType === 'text/plain' || part.contentType === 'text/html') && part.disposition !== 'attachment' && fileName(part) === null;
}

function attachmentName(part: MimePart, index: number): string {
  const given = fileName(part);
  if (part.contentType === 'message/rfc822') {
    const base = given ?? 'attached-message';
    return /\.eml$/i.test(base) ? base : `${base}.eml`;
  }
  if (given) return given;
  let ext = 'bin';
  try {
    ext = libmime().detectExtension(part.contentType) || 'bin';
  } catch {
    // unknown media type: keep .bin
  }
  return `attachment-${index + 1}.${ext}`;
}

/** The first text/plain and text/html leaves that are not attachments: the message's bodies. */
export function messageBodies(root: MimePart): { text: MimePart | null; html: MimePart | null } {
  let text: MimePart | null = null;
  let html: MimePart | null = null;
  for (const part of leaves(root)) {
    if (!isBodyCandidate(part)) continue;
    if (part.contentType === 'text/html') html ??= part;
    else text ??= part;
  }
  return { text, html };
}

/**
 * The bodies (messageBodies) and every other leaf as an attachment. An attachment is inline only when the
 * HTML body shows it: its Content-ID is among `htmlCids` (contentIdKey form) and it is not marked as an
 * attachment. Graph hides inline attachments from the attachment list, so a part with a Content-ID or
 * "inline" that no HTML references must stay a normal attachment or Outlook shows it nowhere.
 */
export function describeMessage(root: MimePart, htmlCids: ReadonlySet<string> = new Set()): MessageParts {
  const { text, html } = messageBodies(root);
  const attachments: AttachmentInfo[] = [];
  for (const part of leaves(root)) {
    if (part === text || part === html || part.boundary) continue; // a multipart leaf is empty: nothing to carry
    const referenced = part.contentId !== null && htmlCids.has(contentIdKey(part.contentId));
    attachments.push({
      part,
      name: attachmentName(part, attachments.length),
      contentType: part.contentType,
      isInline: referenced && part.disposition !== 'attachment' && part.contentType !== 'message/rfc822',
      contentId: part.contentId,
      rawSize: part.nextDelimStart - part.delimStart,
    });
  }
  return { text, html, attachments };
}

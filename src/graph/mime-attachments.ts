/** Which parts of a message are its bodies and which are attachments, with the names and flags Graph wants. */

import libmime from 'libmime';
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
    ext = libmime.detectExtension(part.contentType) || 'bin';
  } catch {
    // unknown media type: keep .bin
  }
  return `attachment-${index + 1}.${ext}`;
}

/**
 * The first text/plain and text/html parts that are not attachments are the bodies; every other leaf is an
 * attachment. An image is inline when it has a Content-ID and is not marked as an attachment: that is what
 * an HTML body can reference with cid:, and what Graph shows inline.
 */
export function describeMessage(root: MimePart): MessageParts {
  let text: MimePart | null = null;
  let html: MimePart | null = null;
  const attachments: AttachmentInfo[] = [];
  for (const part of leaves(root)) {
    if (part === root && !part.boundary && isBodyCandidate(part)) {
      if (part.contentType === 'text/html') html = part;
      else text = part;
      continue;
    }
    if (isBodyCandidate(part)) {
      if (part.contentType === 'text/html' && !html) {
        html = part;
        continue;
      }
      if (part.contentType === 'text/plain' && !text) {
        text = part;
        continue;
      }
    }
    if (part.boundary) continue; // an empty multipart: nothing to carry
    attachments.push({
      part,
      name: attachmentName(part, attachments.length),
      contentType: part.contentType,
      isInline: part.contentId !== null && part.disposition !== 'attachment' && part.contentType !== 'message/rfc822',
      contentId: part.contentId,
      rawSize: part.nextDelimStart - part.delimStart,
    });
  }
  return { text, html, attachments };
}

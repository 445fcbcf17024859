/** The message minus some parts: which parts to cut so the rest fits one request (sent with base64OfRanges). */

import { base64Length } from '../mime/compose.js';
import { isCalendarInvite, type AttachmentInfo } from '../mime/mime-attachments.js';
import type { MimePart } from '../mime/mime-tree.js';

export interface Cut {
  /** Attachments taken out of the MIME, in document order: they go up through the attachments API. */
  detached: AttachmentInfo[];
  /** File byte ranges kept, [start, end). */
  kept: [number, number][];
  keptBytes: number;
}

/**
 * Cuts the biggest attachments first until prefix + the rest fits `maxRequestBytes` as base64. A part is
 * only cut when its multipart keeps at least one other part, so the remaining tree stays valid MIME.
 * A calendar invitation is never cut: uploaded to the draft it would be a plain .ics file, not an
 * invitation. Returns null when no such cut fits (the caller then builds a JSON draft).
 */
export function planCut(fileSize: number, prefixBytes: number, attachments: AttachmentInfo[], maxRequestBytes: number): Cut | null {
  const cut = new Set<AttachmentInfo>();
  const remainingChildren = new Map<MimePart, number>();
  let size = fileSize;
  for (const a of [...attachments].sort((x, y) => y.rawSize - x.rawSize)) {
    if (base64Length(prefixBytes + size) <= maxRequestBytes) break;
    if (isCalendarInvite(a.part)) continue;
    const parent = a.part.parent;
    if (!parent) return null;
    const left = remainingChildren.get(parent) ?? parent.children.length;
    if (left <= 1) continue;
    remainingChildren.set(parent, left - 1);
    cut.add(a);
    size -= a.rawSize;
  }
  if (base64Length(prefixBytes + size) > maxRequestBytes) return null;
  const detached = attachments.filter((a) => cut.has(a));
  const kept: [number, number][] = [];
  let pos = 0;
  for (const a of [...detached].sort((x, y) => x.part.delimStart - y.part.delimStart)) {
    if (a.part.delimStart > pos) kept.push([pos, a.part.delimStart]);
    pos = a.part.nextDelimStart;
  }
  if (pos < fileSize) kept.push([pos, fileSize]);
  return { detached, kept, keptBytes: size };
}

/** The message minus some parts: which parts to cut so the rest fits one request, and the rest as a base64 stream. */

import { createReadStream } from 'node:fs';
import type { AttachmentInfo } from './mime-attachments.js';
import type { MimePart } from './mime-tree.js';

export interface Cut {
  /** Attachments taken out of the MIME, in document order: they go up through the attachments API. */
  detached: AttachmentInfo[];
  /** File byte ranges kept, [start, end). */
  kept: [number, number][];
  keptBytes: number;
}

const b64 = (n: number): number => Math.ceil(n / 3) * 4;

/**
 * Cuts the biggest attachments first until prefix + the rest fits `maxRequestBytes` as base64. A part is
 * only cut when its multipart keeps at least one other part, so the remaining tree stays valid MIME.
 * Returns null when no such cut fits (the caller then builds a JSON draft).
 */
export function planCut(fileSize: number, prefixBytes: number, attachments: AttachmentInfo[], maxRequestBytes: number): Cut | null {
  const cut = new Set<AttachmentInfo>();
  const remainingChildren = new Map<MimePart, number>();
  let size = fileSize;
  for (const a of [...attachments].sort((x, y) => y.rawSize - x.rawSize)) {
    if (b64(prefixBytes + size) <= maxRequestBytes) break;
    const parent = a.part.parent;
    if (!parent) return null;
    const left = remainingChildren.get(parent) ?? parent.children.length;
    if (left <= 1) continue;
    remainingChildren.set(parent, left - 1);
    cut.add(a);
    size -= a.rawSize;
  }
  if (b64(prefixBytes + size) > maxRequestBytes) return null;
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

/** prefix + the kept ranges as one continuous base64 string, never holding more than a read buffer. */
export async function* base64OfKept(prefix: Buffer, file: string, kept: [number, number][]): AsyncGenerator<Buffer> {
  let carry: Buffer = prefix;
  for (const [start, end] of kept) {
    if (end <= start) continue;
    for await (const chunk of createReadStream(file, { start, end: end - 1, highWaterMark: 192 * 1024 }) as AsyncIterable<Buffer>) {
      const buf = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      const n = buf.length - (buf.length % 3);
      if (n > 0) yield Buffer.from(buf.subarray(0, n).toString('base64'), 'latin1');
      carry = buf.subarray(n);
    }
  }
  if (carry.length) yield Buffer.from(carry.toString('base64'), 'latin1');
}

export function base64Size(rawBytes: number): number {
  return b64(rawBytes);
}

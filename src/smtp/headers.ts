/** Reads what ingest needs from a message's header section while its bytes stream to the spool. */

import { simpleParser, type AddressObject } from 'mailparser';

/** Headers beyond this size are not examined (the bytes are still spooled whole). */
const MAX_HEADER_BYTES = 1024 * 1024;

/** Collects the header section (up to the first empty line) from streamed chunks. */
export class HeaderCollector {
  private chunks: Buffer[] = [];
  private bytes = 0;
  done = false;

  push(chunk: Buffer): void {
    if (this.done) return;
    const prevTail = this.chunks.length ? this.chunks[this.chunks.length - 1]!.subarray(-3) : Buffer.alloc(0);
    const joined = prevTail.length ? Buffer.concat([prevTail, chunk]) : chunk;
    let end = joined.indexOf('\r\n\r\n');
    let endLen = 4;
    const lf = joined.indexOf('\n\n');
    if (lf !== -1 && (end === -1 || lf < end)) {
      end = lf;
      endLen = 2;
    }
    if (end !== -1) {
      const upto = end + endLen - prevTail.length;
      this.chunks.push(chunk.subarray(0, Math.max(0, upto)));
      this.done = true;
    } else {
      this.chunks.push(chunk);
    }
    this.bytes += chunk.length;
    if (this.bytes > MAX_HEADER_BYTES) this.done = true;
  }

  get block(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export interface HeaderFacts {
  receivedCount: number;
  to: string[];
  cc: string[];
  bcc: string[];
  from: string[];
  messageId: string | null;
}

function addresses(field: AddressObject | AddressObject[] | undefined): string[] {
  if (!field) return [];
  const out: string[] = [];
  const walk = (list: { address?: string; group?: unknown[] }[]): void => {
    for (const a of list) {
      if (a.address) out.push(a.address);
      if (Array.isArray(a.group)) walk(a.group as { address?: string; group?: unknown[] }[]);
    }
  };
  for (const obj of Array.isArray(field) ? field : [field]) walk(obj.value);
  return out;
}

export async function readHeaderFacts(block: Buffer): Promise<HeaderFacts> {
  const text = block.toString('latin1');
  const receivedCount = (text.match(/^received[ \t]*:/gim) ?? []).length;
  // Only the header section is parsed: the body never enters memory here.
  const parsed = await simpleParser(Buffer.concat([block, Buffer.from('\r\n')]), {
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipImageLinks: true,
    skipTextLinks: true,
  });
  return {
    receivedCount,
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    bcc: addresses(parsed.bcc),
    from: addresses(parsed.from),
    messageId: parsed.messageId ?? null,
  };
}

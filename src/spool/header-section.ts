/** A spooled message's header section, read without its body: for bounces (text/rfc822-headers) and `queue show`. */

import { open } from 'node:fs/promises';
import type { Spool } from './spool.js';
import type { Envelope, SpoolState } from './envelope.js';

const MAX_ORIGINAL_HEADERS = 64 * 1024;

/** The original's header section, read from the spool without reading the body. */
export async function readHeaderSection(spool: Spool, state: SpoolState, env: Envelope): Promise<Buffer> {
  const fh = await open(spool.messagePath(state, env.id), 'r');
  try {
    const buf = Buffer.alloc(Math.min(MAX_ORIGINAL_HEADERS, env.size));
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const data = buf.subarray(0, bytesRead);
    const end = data.indexOf('\r\n\r\n');
    return end === -1 ? data : data.subarray(0, end + 2);
  } finally {
    await fh.close();
  }
}

/** A queued or dead message as an .eml file: the bytes as received (with the relay's Received: field), without the envelope trailer. */

import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Envelope, SpoolState } from './envelope.js';
import { QUEUE_ID_RE } from './queue-id.js';
import type { Spool } from './spool.js';

export interface ExportedMessage {
  state: SpoolState;
  env: Envelope;
  size: number;
  /** The message's bytes, streamed (a large message is never held in memory). */
  open(): Readable;
}

/** Null when the message is in neither queue/ nor dead/ (delivered, bounced or deleted: nothing is kept). */
export async function exportMessage(spool: Spool, id: string): Promise<ExportedMessage | null> {
  if (!QUEUE_ID_RE.test(id)) return null;
  for (const state of ['queue', 'dead'] as const) {
    if (!(await spool.exists(state, id))) continue;
    const { env, data } = await spool.load(state, id, false);
    return { state, env, size: data.size, open: () => createReadStream(data.file, { start: 0, end: Math.max(0, data.size - 1) }) };
  }
  return null;
}

/**
 * A large queue made quickly, for tests and benchmarks: message files written straight into a spool's
 * queue/ in the spool's own format (src/spool/format.ts), without fsync and without SMTP. Never for a
 * relay in service: only a committed file (fsync, rename, folder fsync) is the relay's.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Envelope } from '../../src/spool/envelope.js';
import { envelopeTrailer } from '../../src/spool/format.js';
import { newQueueId } from '../../src/spool/queue-id.js';

export interface PrefillOptions {
  /** The spool folder (its queue/ is created when missing). */
  spoolDir: string;
  n: number;
  /** Sending mailbox of message i. */
  mailbox: (i: number) => string;
  /** Arrival time of the messages (default now). */
  receivedAt?: Date;
  /** Called every 10,000 messages. */
  progress?: (done: number) => void;
}

/** Writes n small messages into queue/; returns their ids. Ids are made in order, as acceptance makes them. */
export function prefillQueue(o: PrefillOptions): string[] {
  const queue = path.join(o.spoolDir, 'queue');
  for (const d of ['tmp', 'queue', 'dead']) mkdirSync(path.join(o.spoolDir, d), { recursive: true });
  const at = (o.receivedAt ?? new Date()).toISOString();
  const ids: string[] = [];
  for (let i = 0; i < o.n; i++) {
    const id = newQueueId();
    const mailbox = o.mailbox(i);
    const body = Buffer.from(`From: <${mailbox}>\r\nTo: <someone@fabrikam.example>\r\nSubject: prefilled ${i}\r\nMessage-ID: <prefill-${id}@bench.example>\r\n\r\nx\r\n`, 'latin1');
    const env: Envelope = {
      version: 1, id, mailFrom: mailbox, rcptTo: ['someone@fabrikam.example'], mailbox, bcc: [], clientAddress: '127.0.0.1', clientHostname: 'localhost',
      helo: 'prefill', listener: 'default', receivedAt: at, size: body.length, messageId: `<prefill-${id}@bench.example>`, attempts: 0, nextAttemptAt: at, lastError: null,
    };
    writeFileSync(path.join(queue, `${id}.msg`), Buffer.concat([body, envelopeTrailer(env)]));
    ids.push(id);
    if (o.progress && (i + 1) % 10_000 === 0) o.progress(i + 1);
  }
  return ids;
}

/** A small message committed straight into a spool's queue, as acceptance would: for engine tests. */

import { newQueueId } from '../../src/spool/queue-id.js';
import type { Envelope } from '../../src/spool/envelope.js';
import type { Spool } from '../../src/spool/spool.js';

export async function queueMessage(spool: Spool, at: string): Promise<string> {
  const id = newQueueId();
  const w = spool.beginMessage(id);
  await w.write(Buffer.from('From: scans@contoso.example\r\nTo: bob@contoso.example\r\nMessage-ID: <m1@test.example>\r\n\r\nbody\r\n'));
  const env: Envelope = {
    version: 1, id, mailFrom: 'scans@contoso.example', rcptTo: ['bob@contoso.example'], mailbox: 'scans@contoso.example', bcc: [],
    clientAddress: '127.0.0.1', clientHostname: 'localhost', helo: 'x', listener: 'default', receivedAt: at,
    size: w.bytes, attempts: 0, nextAttemptAt: at, lastError: null,
  };
  await spool.commit(w, env);
  return id;
}

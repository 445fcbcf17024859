import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RelayStatus, type RelayStatusDeps } from '../../src/app/status.js';
import { Spool } from '../../src/spool/spool.js';
import { prefillQueue } from '../helpers/prefill.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('RelayStatus.story without the history', () => {
  it('describes a queued message from its envelope, and knows nothing of an unknown id', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'status-'));
    dirs.push(dir);
    const receivedAt = new Date('2026-12-01T10:00:00Z');
    const [qid] = prefillQueue({ spoolDir: dir, n: 1, mailbox: () => 'scans@contoso.example', receivedAt });
    const spool = new Spool(dir);
    // Only the spool and the (absent) history are read for a story.
    const status = new RelayStatus({ spool, history: null } as unknown as RelayStatusDeps);
    expect(await status.story(qid!)).toEqual({
      qid, at: receivedAt.getTime(), listener: 'default', client: '127.0.0.1', user: null, tls: null, helo: 'prefill',
      sender: 'scans@contoso.example', rcpts: ['someone@fabrikam.example'], mailbox: 'scans@contoso.example', account: null,
      messageId: null, size: expect.any(Number) as unknown, subject: null, state: 'queued', stateAt: receivedAt.getTime(), attempts: 0,
      lastError: null, events: [], spool: 'queue',
    });
    expect(await status.story('000000000000')).toBeNull();
  });
});

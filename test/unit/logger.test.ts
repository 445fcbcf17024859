/** The log destination: batched lines leave in writes of at least 4 KB (or at a flush); unbatched ones at once. */

import { mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { createLogger, logDestination } from '../../src/observability/logger.js';

function fileLogger(flushIntervalMs: number) {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'log-')), 'out.log');
  const dest = logDestination(flushIntervalMs, openSync(file, 'w')) as ReturnType<typeof logDestination> & NodeJS.EventEmitter;
  const firstWrite = new Promise<number>((resolve) => dest.once('write', (n: number) => resolve(n)));
  const log = createLogger('info', dest);
  return { log, firstWrite, read: () => readFileSync(file, 'utf8') };
}

const flushed = (log: ReturnType<typeof createLogger>): Promise<void> => new Promise((resolve, reject) => log.flush((err) => (err ? reject(err) : resolve())));
const lines = (log: ReturnType<typeof createLogger>, n: number): void => {
  for (let i = 0; i < n; i++) log.info({ event: 'received', qid: `q${i}`, size: 10240 }, 'message accepted');
};

describe('log destination', () => {
  it('batches lines into writes of at least 4 KB, and a flush writes out the rest in order', async () => {
    const { log, firstWrite, read } = fileLogger(60_000);
    lines(log, 100);
    expect(await firstWrite).toBeGreaterThanOrEqual(4096);
    await flushed(log);
    expect(read().trim().split('\n').map((l) => (JSON.parse(l) as { qid: string }).qid)).toEqual(Array.from({ length: 100 }, (_, i) => `q${i}`));
  });

  it('writes the first line at once with log.flushInterval 0', async () => {
    const { log, firstWrite, read } = fileLogger(0);
    lines(log, 100);
    expect(await firstWrite).toBeLessThan(500);
    await vi.waitFor(() => expect(read().trim().split('\n')).toHaveLength(100));
  });
});

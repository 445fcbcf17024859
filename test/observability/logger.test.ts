/** The log destination: batched lines leave in writes of at least 4 KB (or at a flush); unbatched ones at once. */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { createLogger, LineBatch, logDestination } from '../../src/observability/logger.js';

function fileLogger(flushIntervalMs: number) {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'log-')), 'out.log');
  const dest = logDestination(flushIntervalMs, openSync(file, 'w'));
  // sonic-boom's 'write' event gives the bytes of each write it makes.
  const sonic = (dest instanceof LineBatch ? dest.out : dest) as unknown as NodeJS.EventEmitter;
  const firstWrite = new Promise<number>((resolve) => sonic.once('write', (n: number) => resolve(n)));
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

  it('keeps lines whole and in order across batches, multi-byte text included', async () => {
    const { log, read } = fileLogger(60_000);
    const names = Array.from({ length: 300 }, (_, i) => `${'é€😀'.repeat(i % 40)}#${i}`);
    for (const name of names) log.info({ event: 'x', name }, 'line');
    await flushed(log);
    expect(read().trim().split('\n').map((l) => (JSON.parse(l) as { name: string }).name)).toEqual(names);
  });

  it('writes out the lines still gathered when the process exits', () => {
    // Fewer than 4 KB: nothing has been written when process.exit comes.
    const script = `import { createLogger } from ${JSON.stringify(path.resolve('dist/observability/logger.js'))};
      const log = createLogger('info', undefined, 60000);
      for (let i = 0; i < 3; i++) log.info({ event: 'x', i }, 'line');
      process.exit(0);`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(out.trim().split('\n').map((l) => (JSON.parse(l) as { i: number }).i)).toEqual([0, 1, 2]);
  });

  it('writes the first line at once with log.flushInterval 0', async () => {
    const { log, firstWrite, read } = fileLogger(0);
    lines(log, 100);
    expect(await firstWrite).toBeLessThan(500);
    await vi.waitFor(() => expect(read().trim().split('\n')).toHaveLength(100));
  });
});

describe('log timestamps', () => {
  it('are what toISOString writes, across millisecond, second, day and year boundaries', async () => {
    const { isoTime } = await import('../../src/observability/iso-time.js');
    const points = [0, 1, 9, 10, 99, 100, 999, 1000, 1001, Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1), Date.UTC(2028, 1, 29, 12), Date.UTC(9999, 11, 31, 23, 59, 59, 999), Date.UTC(10000, 0, 1), -1, -1001];
    for (const ms of points) {
      // Each point, then its neighbours, then the point again: the cached second must never leak into another.
      for (const x of [ms, ms - 1, ms + 1, ms + 1000, ms]) expect(isoTime(x), String(x)).toBe(new Date(x).toISOString());
    }
    const out: string[] = [];
    const log = createLogger('info', { write: (s: string) => void out.push(s) });
    const before = Date.now();
    log.info('x');
    const time = Date.parse((JSON.parse(out[0]!) as { time: string }).time);
    expect(time).toBeGreaterThanOrEqual(before);
    expect(time).toBeLessThanOrEqual(Date.now());
  });
});

describe('redaction', () => {
  it('censors a secret that is set, and leaves one that is not set as not set', async () => {
    const { log, read } = fileLogger(0);
    log.info({ event: 'config', config: { graph: { clientSecret: 'hunter2-secret' } } }, 'a');
    log.info({ event: 'config', config: { graph: { clientSecret: null } } }, 'b');
    log.info({ event: 'x', password: 'pw-in-clear', token: undefined }, 'c');
    await flushed(log);
    const out = read().trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    expect(out[0]!.config.graph.clientSecret).toBe('[redacted]');
    expect(out[1]!.config.graph.clientSecret).toBeNull();
    expect(out[2]!.password).toBe('[redacted]');
    expect(read()).not.toMatch(/hunter2|pw-in-clear/);
  });
});

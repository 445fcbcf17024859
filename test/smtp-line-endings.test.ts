/** LineEndingGuard on its own: every split of the input into chunks gives the same verdict and the same bytes. */

import { describe, expect, it } from 'vitest';
import { LineEndingGuard, type LineEndingMode } from '../src/smtp/line-endings.js';

function run(mode: LineEndingMode, chunks: Buffer[], maxLine = 1000): { out: string; violation: string | null } {
  const g = new LineEndingGuard(mode, maxLine);
  const parts: Buffer[] = [];
  for (const c of chunks) {
    const o = g.push(c);
    if (o) parts.push(o);
  }
  const tail = g.end();
  if (tail) parts.push(tail);
  return { out: Buffer.concat(parts).toString('latin1'), violation: g.violation };
}

/** All ways to cut the input in two, plus byte by byte. */
function splits(s: string): Buffer[][] {
  const b = Buffer.from(s, 'latin1');
  const out: Buffer[][] = [[b], [...b].map((x) => Buffer.from([x]))];
  for (let i = 1; i < b.length; i++) out.push([b.subarray(0, i), b.subarray(i)]);
  return out;
}

describe('LineEndingGuard', () => {
  const cases: [string, string, string | null][] = [
    // input, normalized output, kind of violation in reject mode
    ['a\r\nb\r\n', 'a\r\nb\r\n', null],
    ['a\nb\r\n', 'a\r\nb\r\n', 'bare LF at offset 1'],
    ['a\rb\r\n', 'a\r\nb\r\n', 'bare CR at offset 1'],
    ['a\r\r\n', 'a\r\n\r\n', 'bare CR at offset 1'],
    ['a\r\n.\n', 'a\r\n.\r\n', 'bare LF at offset 4'],
    ['a\r', 'a\r\n', 'bare CR at offset 1'],
    ['\n', '\r\n', 'bare LF at offset 0'],
  ];
  for (const [input, normalized, violation] of cases) {
    it(`${JSON.stringify(input)}: same result for every chunking`, () => {
      for (const chunks of splits(input)) {
        expect(run('normalize', chunks)).toEqual({ out: normalized, violation: null });
        const r = run('reject', chunks);
        if (violation) expect(r.violation).toMatch(new RegExp(`^${violation} `));
        else expect(r).toEqual({ out: input, violation: null });
      }
    });
  }

  it('refuses NUL in both modes and over-long lines', () => {
    expect(run('normalize', [Buffer.from('a\r\n\0.\r\n')]).violation).toBe('NUL byte at offset 3');
    expect(run('reject', [Buffer.from('a'.repeat(1001) + '\r\n')]).violation).toMatch(/longer than 1000 bytes \(limits\.maxLineLength\)/);
    expect(run('reject', [Buffer.from('a'.repeat(1000) + '\r\n')]).violation).toBeNull();
  });
});

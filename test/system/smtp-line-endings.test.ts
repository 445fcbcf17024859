/** LineEndingGuard on its own: every split of the input into chunks gives the same verdict and the same bytes. */

import { describe, expect, it } from 'vitest';
import { LineEndingGuard, type LineEndingMode } from '../../src/smtp/line-endings.js';

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

  it('agrees with a byte-by-byte reading on random input, chunking and limits', () => {
    let seed = 42;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      // The high bits: the low bits of this generator repeat with a short period (the lowest alternates).
      return (seed >>> 12) % n;
    };
    // Bytes above 0x7f too (0x85 is NEL, 0x8d and 0x8a end in CR's and LF's low bits): the guard scans a latin1 copy.
    const alphabet = [0x61, 0xc3, 0x8d, 0x8a, 0x85, 0xff, 0x0d, 0x0a, 0x0d, 0x0a, 0x00];
    for (let round = 0; round < 3000; round++) {
      const bytes = Buffer.from(Array.from({ length: rnd(40) }, () => (rnd(20) === 0 ? alphabet[10]! : alphabet[rnd(10)]!)));
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length; ) {
        const n = 1 + rnd(12);
        chunks.push(bytes.subarray(at, at + n));
        at += n;
      }
      const maxLine = 1 + rnd(8);
      for (const mode of ['reject', 'normalize'] as const) {
        const got = run(mode, chunks, maxLine);
        const want = oracle(mode, bytes, maxLine);
        // After a violation nothing is stored, so only the verdict is compared then.
        expect(want.violation === null ? got : got.violation, `${mode} ${JSON.stringify(bytes.toString('latin1'))} max ${maxLine}`).toEqual(want.violation === null ? want : want.violation);
      }
    }
  });
});

/** The rule stated byte by byte, as the guard once read it: the reference for the indexOf version. */
function oracle(mode: LineEndingMode, b: Buffer, maxLine: number): { out: string; violation: string | null } {
  let out = '';
  let line = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === 0x0d && b[i + 1] === 0x0a) {
      out += '\r\n';
      i++;
      line = 0;
    } else if (c === 0x0d || c === 0x0a) {
      if (mode === 'reject') return { out: '', violation: `bare ${c === 0x0d ? 'CR' : 'LF'} at offset ${i} (lines must end with CRLF; limits.bareLineEndings: reject)` };
      out += '\r\n';
      line = 0;
    } else if (c === 0) {
      return { out: '', violation: `NUL byte at offset ${i}` };
    } else if (++line > maxLine) {
      return { out: '', violation: `a line longer than ${maxLine} bytes (limits.maxLineLength)` };
    } else {
      out += String.fromCharCode(c);
    }
  }
  return { out, violation: null };
}

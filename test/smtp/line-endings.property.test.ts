/** Properties of LineEndingGuard (DATA): chunking never changes the verdict or the bytes, and nothing bare gets through. */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineEndingGuard, type LineEndingMode } from '../../src/smtp/line-endings.js';

function run(mode: LineEndingMode, chunks: Buffer[], maxLine: number): { out: Buffer; violation: string | null } {
  const g = new LineEndingGuard(mode, maxLine);
  const parts: Buffer[] = [];
  for (const c of chunks) {
    const o = g.push(c);
    if (o) parts.push(o);
  }
  const tail = g.end();
  if (tail) parts.push(tail);
  return { out: Buffer.concat(parts), violation: g.violation };
}

/** Line-end bytes, NUL, bytes whose low bits look like CR/LF, and ordinary ones. */
const byte = fc.constantFrom(0x61, 0x2e, 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x8d, 0x8a, 0x85, 0xff);
const bytes = fc.array(byte, { maxLength: 60 }).map((a) => Buffer.from(a));
const mode = fc.constantFrom('reject', 'normalize') as fc.Arbitrary<LineEndingMode>;
const maxLine = fc.integer({ min: 1, max: 12 });

function cut(b: Buffer, points: number[]): Buffer[] {
  const at = [...new Set(points.map((p) => p % (b.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of at) {
    out.push(b.subarray(from, p)); // empty chunks too: the guard must take them
    from = p;
  }
  out.push(b.subarray(from));
  return out;
}
const points = fc.array(fc.nat(), { maxLength: 10 });

/** No CR without an LF after it, no LF without a CR before it, no NUL. */
function clean(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x00) return false;
    if (b[i] === 0x0d && b[i + 1] !== 0x0a) return false;
    if (b[i] === 0x0a && b[i - 1] !== 0x0d) return false;
  }
  return true;
}

describe('LineEndingGuard', () => {
  it('gives the same verdict and the same bytes for any cut of the same input', () => {
    fc.assert(
      fc.property(bytes, points, mode, maxLine, (input, p, m, max) => {
        const whole = run(m, [input], max);
        const pieces = run(m, cut(input, p), max);
        expect(pieces.violation).toBe(whole.violation);
        if (whole.violation === null) expect(pieces.out.toString('latin1')).toBe(whole.out.toString('latin1'));
      }),
      { numRuns: 3000 },
    );
  });

  it('never lets a bare CR, a bare LF or a NUL through, in either mode, whatever was stored before a violation', () => {
    fc.assert(
      fc.property(bytes, points, mode, maxLine, (input, p, m, max) => {
        const r = run(m, cut(input, p), max);
        // Bytes handed out before a violation may end in the middle of a line, never in a bare line end.
        const out = r.violation && r.out.at(-1) === 0x0d ? r.out.subarray(0, -1) : r.out;
        expect(clean(out)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('reject passes clean input through unchanged and refuses anything else; normalize is idempotent', () => {
    fc.assert(
      fc.property(bytes, maxLine, (input, max) => {
        const rejected = run('reject', [input], max);
        const longest = Math.max(0, ...input.toString('latin1').split('\r\n').map((l) => l.length));
        if (clean(input) && longest <= max) expect(rejected).toEqual({ out: input, violation: null });
        else expect(rejected.violation).not.toBeNull();
        const once = run('normalize', [input], max);
        if (once.violation === null) expect(run('normalize', [once.out], max)).toEqual(once);
      }),
      { numRuns: 3000 },
    );
  });
});

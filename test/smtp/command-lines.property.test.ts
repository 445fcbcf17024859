/** Properties of command lines: smtp-server's parser with the guard's line-end tracking, and the guard's verdict. */

import fc from 'fast-check';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { describe, expect, it } from 'vitest';
import { commandViolation } from '../../src/smtp/command-lines.js';
import { installCommandGuard, onLines } from '../../src/smtp/smtp-server-internals.js';

installCommandGuard();

interface Line {
  line: string;
  bareLf: boolean;
}

/** Lines as RFC 5321 reads them: each LF ends one (a CR right before it is the line end's, not the line's). */
function oracle(input: string): Line[] {
  const out: Line[] = [];
  let start = 0;
  for (let i = input.indexOf('\n'); i !== -1; i = input.indexOf('\n', i + 1)) {
    const crlf = i > start && input[i - 1] === '\r';
    out.push({ line: input.slice(start, crlf ? i - 1 : i), bareLf: !crlf });
    start = i + 1;
  }
  // What follows the last line end is dispatched when the client closes its side.
  if (start < input.length) out.push({ line: input.slice(start), bareLf: false });
  return out;
}

/** Feeds `chunks` to a real SMTPStream; DATA switches it to data mode until <CRLF>.<CRLF>, as a connection does. */
async function parse(chunks: Buffer[]): Promise<{ lines: Line[]; data: string[] }> {
  const parser = new SMTPStream({ maxCommandLength: 1 << 20 });
  const lines: Line[] = [];
  const data: string[] = [];
  onLines(parser, (line, bareLf, callback) => {
    const text = line.toString('latin1');
    lines.push({ line: text, bareLf });
    if (text === 'DATA') {
      const body = parser.startDataMode();
      const parts: Buffer[] = [];
      body.on('data', (b: Buffer) => parts.push(b));
      body.on('end', () => {
        data.push(Buffer.concat(parts).toString('latin1'));
        parser.continue();
      });
    }
    callback?.();
  });
  for (const c of chunks) parser.write(c);
  await new Promise<void>((resolve) => parser.end(resolve));
  return { lines, data };
}

/** Bytes that make command lines interesting: every line-end byte, NUL, and a few ordinary ones. */
const byte = fc.constantFrom(...'AB :<>.'.split(''), '\r', '\n', '\r\n', '\0');
const text = fc.array(byte, { maxLength: 40 }).map((a) => a.join(''));

/** The input cut at arbitrary points. */
function cut(input: string, points: number[]): Buffer[] {
  const b = Buffer.from(input, 'latin1');
  const at = [...new Set(points.map((p) => p % (b.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of at) {
    if (p > from) out.push(b.subarray(from, p));
    from = Math.max(from, p);
  }
  if (from < b.length) out.push(b.subarray(from));
  return out;
}
const points = fc.array(fc.nat(), { maxLength: 8 });

describe('command lines', () => {
  it('every line is seen with whether a bare LF ended it, however the bytes are cut', async () => {
    await fc.assert(
      fc.asyncProperty(text, points, async (input, p) => {
        const { lines } = await parse(cut(input, p));
        expect(lines).toEqual(oracle(input));
      }),
      { numRuns: 500 },
    );
  });

  it('bare LFs inside DATA do not shift what is known of the commands after it', async () => {
    const payload = fc.array(fc.constantFrom('x', '.', '\r', '\n', '\r\n'), { maxLength: 20 }).map((a) => a.join(''));
    await fc.assert(
      fc.asyncProperty(text, payload, text, points, async (before, body, after, p) => {
        // A body is content up to the first <CRLF>.<CRLF> (or a "." line right at its start).
        fc.pre(!`\r\n${body}`.includes('\r\n.\r\n') && !`\r\n${body}\r\n.\r\n`.slice(0, -3).includes('\r\n.\r\n'));
        const head = before.endsWith('\n') || before === '' ? before : `${before}\r\n`;
        const input = `${head}DATA\r\n${body}\r\n.\r\n${after}`;
        const { lines, data } = await parse(cut(input, p));
        expect(data).toHaveLength(1);
        expect(lines).toEqual([...oracle(`${head}DATA\r\n`), ...oracle(after)]);
      }),
      { numRuns: 500 },
    );
  });
});

describe('commandViolation', () => {
  const line = fc.uint8Array({ maxLength: 30 }).map((a) => Buffer.from(a));
  it('refuses exactly the lines with CR, LF or NUL, and bare-LF endings only under reject', () => {
    fc.assert(
      fc.property(line, fc.boolean(), fc.constantFrom('reject', 'normalize') as fc.Arbitrary<'reject' | 'normalize'>, (l, bareLf, mode) => {
        const bad = l.includes(0x0d) || l.includes(0x0a) || l.includes(0x00);
        const verdict = commandViolation(l, bareLf, mode);
        expect(verdict !== null).toBe(bad || (bareLf && mode === 'reject'));
        // The reply names what it found, never the line itself (which may hold anything).
        if (verdict) expect(verdict).toMatch(/^(bare CR|bare LF|NUL) at column \d+ |^command line ended by a bare LF /);
      }),
      { numRuns: 2000 },
    );
  });
});

/** Properties of the PROXY protocol readers: the relay's v2 parser in front of smtp-server's v1 reader, as a listener uses them. */

import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import fc from 'fast-check';
import { SMTPServer } from 'smtp-server';
import { describe, expect, it } from 'vitest';
import { ProxyHeaderError } from '../../src/errors.js';
import { parseProxyV2, withProxyV2, type ProxiedSocketOptions } from '../../src/smtp/proxy-v2.js';

/** A socket whose client side the test writes; what the server writes back is kept. */
class FakeSocket extends Duplex {
  remoteAddress = '10.9.9.9';
  readonly written: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.written.push(chunk);
    cb();
  }
}

type Handle = (socket: Socket, cb: (err: Error | null, opts?: ProxiedSocketOptions) => void) => void;

/** smtp-server's reader (v1 text) with the relay's v2 reader in front, as SmtpListener installs them. */
function relayReader(): Handle {
  const server = new SMTPServer({ logger: false, useProxy: true, disabledCommands: ['STARTTLS'] });
  const internals = server as unknown as { _handleProxy: Handle };
  return withProxyV2(internals._handleProxy.bind(server), () => true);
}

interface Outcome {
  err: string | null;
  remoteAddress?: string;
  remotePort?: number;
  /** What SMTP reads once the header is done. */
  rest: string;
}

/** Feeds the chunks one event-loop turn apart, then reads what is left for SMTP. */
async function read(handle: Handle, chunks: Buffer[]): Promise<Outcome> {
  const s = new FakeSocket();
  let outcome: Omit<Outcome, 'rest'> | null = null;
  handle(s as unknown as Socket, (err, opts) => {
    outcome = { err: err ? err.message : null, remoteAddress: opts?.remoteAddress, remotePort: opts?.remotePort };
  });
  for (const c of chunks) {
    if (s.destroyed) break;
    s.push(c);
    await new Promise((r) => setImmediate(r));
  }
  const rest: Buffer[] = [];
  let c: Buffer | null;
  while (!s.destroyed && (c = s.read() as Buffer | null) !== null) rest.push(c);
  return { ...(outcome ?? { err: 'no outcome' }), rest: Buffer.concat(rest).toString('latin1') };
}

function cut(b: Buffer, points: number[]): Buffer[] {
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

const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
const ipv6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 });
const port = fc.nat(0xffff);
const smtp = fc.constantFrom('', 'EHLO lb.example\r\n', 'QUIT\r\n', '\r\n\r\n\0');

/** A v2 header: command, address family (with its address block) and TLV bytes, and the length field written for it. */
const v2 = fc
  .record({
    local: fc.boolean(),
    family: fc.constantFrom(0, 1, 2, 3),
    src4: ipv4,
    src6: ipv6,
    sport: port,
    tlv: fc.uint8Array({ maxLength: 40 }),
  })
  .map((h) => {
    const addr = h.family === 1 ? Buffer.alloc(12) : h.family === 2 ? Buffer.alloc(36) : h.family === 3 ? Buffer.alloc(216) : Buffer.alloc(0);
    if (h.family === 1) {
      h.src4.forEach((o, i) => addr.writeUInt8(o, i));
      addr.writeUInt16BE(h.sport, 8);
    }
    if (h.family === 2) {
      h.src6.forEach((g, i) => addr.writeUInt16BE(g, i * 2));
      addr.writeUInt16BE(h.sport, 32);
    }
    const body = Buffer.concat([addr, Buffer.from(h.tlv)]);
    const fixed = Buffer.alloc(4);
    fixed.writeUInt8(0x20 | (h.local ? 0 : 1), 0);
    fixed.writeUInt8((h.family << 4) | 1, 1);
    fixed.writeUInt16BE(body.length, 2);
    const expected = h.local || h.family === 0 || h.family === 3 ? {} : h.family === 1 ? { remoteAddress: h.src4.join('.'), remotePort: h.sport } : { remoteAddress: h.src6.map((g) => g.toString(16)).join(':'), remotePort: h.sport };
    return { bytes: Buffer.concat([SIGNATURE, fixed, body]), expected };
  });

describe('PROXY v2 (src/smtp/proxy-v2.ts)', () => {
  it('reads the client address of any well-formed header, however it is cut, and leaves exactly the bytes after it for SMTP', async () => {
    await fc.assert(
      fc.asyncProperty(v2, smtp, points, async (h, after, p) => {
        const got = await read(relayReader(), cut(Buffer.concat([h.bytes, Buffer.from(after, 'latin1')]), p));
        expect(got).toEqual({ err: null, ...h.expected, rest: after });
      }),
      { numRuns: 300 },
    );
  });

  it('takes exactly 16 + the length field: a header that claims more waits for it, one that claims less leaves the rest to SMTP', () => {
    fc.assert(
      fc.property(v2, fc.integer({ min: -40, max: 40 }), (h, delta) => {
        const len = h.bytes.readUInt16BE(14);
        fc.pre(len + delta >= 0);
        const bytes = Buffer.from(h.bytes);
        bytes.writeUInt16BE(len + delta, 14);
        let parsed: ReturnType<typeof parseProxyV2> | 'refused';
        try {
          parsed = parseProxyV2(bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(ProxyHeaderError);
          parsed = 'refused';
        }
        if (delta > 0) expect(parsed).toBeNull();
        else if (parsed !== 'refused') {
          expect(parsed!.length).toBe(16 + len + delta);
          // An address is read only from an address block that the length field covers whole.
          const family = bytes[13]! >> 4;
          if (parsed!.remoteAddress) expect(len + delta).toBeGreaterThanOrEqual(family === 1 ? 12 : 36);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses a version other than 2, an unknown command and an INET or INET6 header too short for its addresses', () => {
    fc.assert(
      fc.property(fc.constantFrom(2, 2, 2, 1, 3, 15), fc.constantFrom(0, 1, 1, 2, 15), fc.integer({ min: 0, max: 15 }), fc.nat(15), fc.uint8Array({ maxLength: 40 }), (version, command, family, proto, body) => {
        const b = Buffer.concat([SIGNATURE, Buffer.from([(version << 4) | command, (family << 4) | proto, 0, 0]), Buffer.from(body)]);
        b.writeUInt16BE(body.length, 14);
        const ok = version === 2 && (command === 0 || (command === 1 && (family === 0 || family === 3 || (family === 1 && body.length >= 12) || (family === 2 && body.length >= 36))));
        let accepted = false;
        try {
          accepted = parseProxyV2(b) !== null;
        } catch (err) {
          expect(err).toBeInstanceOf(ProxyHeaderError);
        }
        expect(accepted).toBe(ok);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('PROXY v1 (smtp-server) behind the v2 reader', () => {
  it('reads the client address and port of a v1 line, however it is cut, and leaves the rest for SMTP', async () => {
    await fc.assert(
      fc.asyncProperty(ipv4, ipv4, port, port, smtp, points, async (src, dst, sport, dport, after, p) => {
        const line = `PROXY TCP4 ${src.join('.')} ${dst.join('.')} ${sport} ${dport}\r\n`;
        const got = await read(relayReader(), cut(Buffer.from(line + after, 'latin1'), p));
        expect(got).toEqual({ err: null, remoteAddress: src.join('.'), remotePort: sport || undefined, rest: after });
      }),
      { numRuns: 300 },
    );
  });

  it('bytes that are not a v2 header reach the v1 reader whole: the outcome is the v1 reader\'s own, however they are cut', async () => {
    // The v2 signature's own bytes, then anything: the hand-over point moves with the cut.
    const notV2 = fc.tuple(fc.nat(SIGNATURE.length - 1), fc.uint8Array({ minLength: 1, maxLength: 30 }), fc.constantFrom('PROXY TCP4 192.0.2.1 192.0.2.2 1000 25\r\n', 'PROXY TCP4 not-an-ip 192.0.2.2 1 2\r\n', 'EHLO x\r\n')).map(([n, junk, tail]) => {
      const head = Buffer.concat([SIGNATURE.subarray(0, n), Buffer.from(junk)]);
      // Make sure the bytes leave the signature somewhere.
      if (head.length >= SIGNATURE.length && head.subarray(0, SIGNATURE.length).equals(SIGNATURE)) head[n] = SIGNATURE[n]! ^ 0xff;
      return Buffer.concat([head, Buffer.from(tail, 'latin1')]);
    });
    await fc.assert(
      fc.asyncProperty(notV2, points, async (bytes, p) => {
        const server = new SMTPServer({ logger: false, useProxy: true, disabledCommands: ['STARTTLS'] });
        const v1Only = (server as unknown as { _handleProxy: Handle })._handleProxy.bind(server);
        const alone = await read(v1Only, [bytes]);
        const behind = await read(relayReader(), cut(bytes, p));
        expect(behind).toEqual(alone);
      }),
      { numRuns: 300 },
    );
  });
});

/** PROXY protocol v2 (binary) for trusted load balancers; v1 text headers are left to smtp-server. */

import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { ProxyHeaderError } from '../errors.js';

const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const FIXED = 16;
/** Real headers carry addresses plus a few TLVs; anything bigger is not a load balancer talking. */
const MAX_V2_LENGTH = 4096;

export interface ProxiedSocketOptions {
  id: string;
  remoteAddress?: string;
  remotePort?: number;
}

type HandleProxy = (socket: Socket, callback: (err: Error | null, opts?: ProxiedSocketOptions) => void) => void;



/** Parses a complete v2 header; null when more bytes are needed. */
export function parseProxyV2(buf: Buffer): { length: number; remoteAddress?: string; remotePort?: number } | null {
  if (buf.length < FIXED) return null;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) throw new ProxyHeaderError(`PROXY v2: unsupported version ${verCmd >> 4}`);
  const len = buf.readUInt16BE(14);
  if (len > MAX_V2_LENGTH) throw new ProxyHeaderError(`PROXY v2: header of ${len} bytes is too long`);
  if (buf.length < FIXED + len) return null;
  const total = FIXED + len;
  const cmd = verCmd & 0x0f;
  if (cmd === 0) return { length: total }; // LOCAL: the balancer's own health check, keep the peer address
  if (cmd !== 1) throw new ProxyHeaderError(`PROXY v2: unknown command ${cmd}`);
  const family = buf[13]! >> 4;
  const body = buf.subarray(FIXED, total);
  if (family === 1 && body.length >= 12) {
    return { length: total, remoteAddress: [...body.subarray(0, 4)].join('.'), remotePort: body.readUInt16BE(8) };
  }
  if (family === 2 && body.length >= 36) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(body.readUInt16BE(i).toString(16));
    return { length: total, remoteAddress: groups.join(':'), remotePort: body.readUInt16BE(32) };
  }
  // AF_UNSPEC or AF_UNIX: no IP to present, like LOCAL.
  if (family === 0 || family === 3) return { length: total };
  throw new ProxyHeaderError(`PROXY v2: unknown address family ${family}`);
}

/**
 * Wraps smtp-server's header reader: a v2 signature is parsed here, anything else (v1 text, garbage)
 * goes back to smtp-server untouched, which answers garbage with "* BAD" and closes.
 */
export function withProxyV2(v1: HandleProxy, expects: (socket: Socket) => boolean): HandleProxy {
  return (socket, callback) => {
    if (!expects(socket)) return v1(socket, callback);
    let buf = Buffer.alloc(0);
    let finished = false;
    const finish = (err: Error | null, opts?: ProxiedSocketOptions): void => {
      if (finished) return;
      finished = true;
      socket.removeListener('readable', onReadable);
      socket.removeListener('close', onClose);
      socket.removeListener('error', onError);
      if (err) {
        socket.on('error', () => undefined);
        socket.destroy();
      }
      callback(err, opts);
    };
    const onClose = (): void => finish(new ProxyHeaderError('socket closed before the PROXY header'));
    const onError = (err: Error): void => finish(err);
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) buf = Buffer.concat([buf, chunk]);
      const n = Math.min(buf.length, SIGNATURE.length);
      if (!buf.subarray(0, n).equals(SIGNATURE.subarray(0, n))) {
        // Not v2: hand everything read so far to the v1 reader.
        finished = true;
        socket.removeListener('readable', onReadable);
        socket.removeListener('close', onClose);
        socket.removeListener('error', onError);
        if (buf.length) socket.unshift(buf);
        return v1(socket, callback);
      }
      let parsed;
      try {
        parsed = parseProxyV2(buf);
      } catch (err) {
        return finish(err as Error);
      }
      if (!parsed) return;
      const rest = buf.subarray(parsed.length);
      if (rest.length) socket.unshift(rest);
      const opts: ProxiedSocketOptions = { id: BigInt(`0x${randomBytes(10).toString('hex')}`).toString(32).padStart(16, '0') };
      if (parsed.remoteAddress) {
        opts.remoteAddress = parsed.remoteAddress;
        opts.remotePort = parsed.remotePort;
      }
      finish(null, opts);
    };
    socket.on('readable', onReadable);
    socket.on('close', onClose);
    socket.on('error', onError);
  };
}

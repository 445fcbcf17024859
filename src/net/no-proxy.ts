/**
 * NO_PROXY as curl reads it: the hosts reached directly although a proxy is set. Entries are separated by
 * commas or spaces: `*` (everything), a host name (itself and its subdomains; a leading `.` or `*.` means
 * the same), `host:port` (that port only), an IP address, or an IP range in CIDR notation (`10.0.0.0/8`,
 * matched against hosts written as addresses: names are not resolved to decide).
 */

import { BlockList, isIP } from 'node:net';

interface Entry {
  /** Lower-case name without the leading dot, or an IP address; null for a CIDR range. */
  host: string | null;
  range: BlockList | null;
  port: number | null;
}

/** Why an entry cannot be read, or null when it can. */
export function noProxyProblem(entry: string): string | null {
  try {
    parseEntry(entry);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Splits NO_PROXY's value into its entries. */
export function splitNoProxy(value: string): string[] {
  return value.split(/[\s,]+/).filter(Boolean);
}

function parseEntry(raw: string): Entry | 'all' {
  const e = raw.trim().toLowerCase();
  if (e === '*') return 'all';
  const cidr = /^\[?([0-9a-f:.]+)\]?\/(\d{1,3})$/.exec(e);
  if (cidr) {
    const family = isIP(cidr[1]!);
    const bits = Number(cidr[2]);
    if (family === 0 || bits > (family === 4 ? 32 : 128)) throw new Error(`"${raw}" is not an IP range`);
    const range = new BlockList();
    range.addSubnet(cidr[1]!, bits, family === 4 ? 'ipv4' : 'ipv6');
    return { host: null, range, port: null };
  }
  // [v6]:port, [v6], v6, v4:port, name:port, name
  const bracketed = /^\[([0-9a-f:.]+)\](?::(\d+))?$/.exec(e);
  let host: string;
  let port: string | undefined;
  if (bracketed) [, host, port] = bracketed as unknown as [string, string, string | undefined];
  else if (isIP(e) === 6) host = e;
  else [host, port] = e.split(/:(?=\d+$)/) as [string, string | undefined];
  host = host.replace(/^\*?\./, '');
  if (!host || !/^[a-z0-9.:_-]+$/.test(host)) throw new Error(`"${raw}" is not a host name, address or range`);
  const p = port === undefined ? null : Number(port);
  if (p !== null && (p < 1 || p > 65535)) throw new Error(`"${raw}" has a port outside 1-65535`);
  return { host, range: null, port: p };
}

export class NoProxy {
  private readonly all: boolean;
  private readonly entries: Entry[];

  constructor(list: readonly string[]) {
    const parsed = list.map(parseEntry);
    this.all = parsed.includes('all');
    this.entries = parsed.filter((p): p is Entry => p !== 'all');
  }

  /** True when a request to `url` goes directly, not through the proxy. */
  bypass(url: URL): boolean {
    if (this.all) return true;
    const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const family = isIP(host);
    return this.entries.some((e) => {
      if (e.port !== null && e.port !== port) return false;
      if (e.range) return family !== 0 && e.range.check(host, family === 4 ? 'ipv4' : 'ipv6');
      if (family !== 0) return e.host === host;
      return host === e.host || host.endsWith(`.${e.host}`);
    });
  }
}

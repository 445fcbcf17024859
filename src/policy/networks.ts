/** Client network rules: which addresses may use a listener, as node:net BlockLists. */

import { BlockList, isIP } from 'node:net';

/** Verdicts remembered per address string: BlockList.check builds a SocketAddress each time (4% of ingest CPU). */
const CACHE_ENTRIES = 4096;

export class NetworkList {
  private readonly list = new BlockList();
  private readonly cache = new Map<string, boolean>();
  constructor(readonly cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const [ip, bits] = cidr.split('/') as [string, string | undefined];
      const family = isIP(ip) === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) this.list.addAddress(ip, family);
      else this.list.addSubnet(ip, Number(bits), family);
    }
  }

  /** IPv4-mapped IPv6 addresses (::ffff:10.0.0.1, from dual-stack sockets) match their IPv4 rules. */
  contains(address: string): boolean {
    let hit = this.cache.get(address);
    if (hit === undefined) {
      hit = this.check(address);
      if (this.cache.size >= CACHE_ENTRIES) this.cache.clear();
      this.cache.set(address, hit);
    }
    return hit;
  }

  private check(address: string): boolean {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    const ip = mapped ? mapped[1]! : address;
    const family = isIP(ip);
    if (family === 0) return false;
    return this.list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
  }
}

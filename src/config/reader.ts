/** Reading the configuration's YAML: every key consumed and checked, so a bad or unknown one is named by its path. */

import { BlockList, isIP } from 'node:net';
import { ConfigError } from '../errors.js';
import { parseDuration, parseSize } from './units.js';

export type Raw = Record<string, unknown>;

/** Walks the raw YAML, consuming keys, so that unknown keys and bad values are named by their path. */
export class Reader {
  private readonly seen = new Set<string>();
  constructor(
    private readonly obj: Raw,
    private readonly prefix: string,
  ) {}

  key(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  raw(name: string): unknown {
    this.seen.add(name);
    return this.obj[name];
  }

  section(name: string): Reader {
    const v = this.raw(name);
    if (v === undefined || v === null) return new Reader({}, this.key(name));
    if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(this.key(name), 'must be a mapping');
    return new Reader(v as Raw, this.key(name));
  }

  str(name: string, def: string): string;
  str(name: string, def: null): string | null;
  str(name: string, def: string | null): string | null {
    const v = this.raw(name);
    if (v === undefined || v === null || v === '') return def;
    if (typeof v !== 'string' && typeof v !== 'number') throw new ConfigError(this.key(name), `must be a string (got ${JSON.stringify(v)})`);
    return String(v);
  }

  bool(name: string, def: boolean): boolean {
    const v = this.raw(name);
    if (v === undefined || v === null) return def;
    if (typeof v !== 'boolean') throw new ConfigError(this.key(name), `must be true or false (got ${JSON.stringify(v)})`);
    return v;
  }

  int(name: string, def: number, min: number, max: number): number {
    const v = this.raw(name);
    if (v === undefined || v === null) return def;
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      throw new ConfigError(this.key(name), `must be a whole number from ${min} to ${max} (got ${JSON.stringify(v)})`);
    }
    return n;
  }

  size(name: string, def: number, min: number, max: number): number {
    const v = this.raw(name);
    if (v === undefined || v === null) return def;
    const n = parseSize(v);
    if (n === undefined) throw new ConfigError(this.key(name), `must be a size such as 3145728, "512KB" or "35MB" (got ${JSON.stringify(v)})`);
    if (n < min || n > max) throw new ConfigError(this.key(name), `must be between ${min} and ${max} bytes (got ${n})`);
    return n;
  }

  duration(name: string, def: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.raw(name);
    if (v === undefined || v === null) return def;
    const n = parseDuration(v);
    if (n === undefined) throw new ConfigError(this.key(name), `must be a duration such as 30 (seconds), "500ms", "5m", "1h" or "5d" (got ${JSON.stringify(v)})`);
    if (n < min || n > max) throw new ConfigError(this.key(name), `must be between ${min} ms and ${max} ms (got ${n} ms)`);
    return n;
  }

  oneOf<T extends string>(name: string, choices: readonly T[], def: T): T {
    const v = this.raw(name);
    if (v === undefined || v === null) return def;
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
      throw new ConfigError(this.key(name), `must be one of ${choices.join(', ')} (got ${JSON.stringify(v)})`);
    }
    return v as T;
  }

  list(name: string, def: unknown[]): unknown[] {
    const v = this.raw(name);
    if (v === undefined || v === null) return def;
    if (!Array.isArray(v)) throw new ConfigError(this.key(name), 'must be a list');
    return v;
  }

  map(name: string): Record<string, unknown> {
    const v = this.raw(name);
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(this.key(name), 'must be a mapping');
    return v as Record<string, unknown>;
  }

  /** Every key of the section must have been read: a typo must not be silently ignored. */
  done(): void {
    for (const k of Object.keys(this.obj)) {
      if (!this.seen.has(k)) throw new ConfigError(this.key(k), 'unknown setting (see config/relay.example.yaml)');
    }
  }
}


export function validateCidr(key: string, cidr: string): void {
  const m = /^(.+)\/(\d{1,3})$/.exec(cidr);
  const ip = m ? m[1]! : cidr;
  const family = isIP(ip);
  if (family === 0) throw new ConfigError(key, `"${cidr}" is not an IP address or CIDR range`);
  if (m) {
    const bits = Number(m[2]);
    if (bits > (family === 4 ? 32 : 128)) throw new ConfigError(key, `"${cidr}" has a prefix length over ${family === 4 ? 32 : 128}`);
    // BlockList rejects what it cannot represent; surface that as a config error, not a crash later.
    new BlockList().addSubnet(ip, bits, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/** Password hashes for SMTP AUTH users: scrypt in a self-describing string, compared in constant time. */

import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { PasswordHashError } from '../errors.js';

/** Cost parameters of one hash; stored in the string so they can be raised without breaking old hashes. */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

export interface ParsedHash extends ScryptParams {
  salt: Buffer;
  hash: Buffer;
}

/** OWASP's minimum for scrypt (2^14, 8, 1): about 50 ms and 16 MiB per check on a small server. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 16384, r: 8, p: 1 };
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;
const FORMAT = /^scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;


function scrypt(password: string, salt: Buffer, params: ScryptParams, keylen: number): Promise<Buffer> {
  // maxmem must cover 128 * N * r bytes or node:crypto refuses larger N.
  const opts: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r + (1 << 20) };
  return new Promise((resolve, reject) => scryptCb(password.normalize('NFC'), salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

/** Parses `scrypt$N=16384,r=8,p=1$<salt b64>$<hash b64>`; throws PasswordHashError saying what is wrong. */
export function parsePasswordHash(text: string): ParsedHash {
  const m = FORMAT.exec(text.trim());
  if (!m) throw new PasswordHashError('must be a hash made by "smtp-graph-relay hash-password" (scrypt$N=...,r=...,p=...$salt$hash), never a plaintext password');
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (N < 2 || N > 2 ** 20 || (N & (N - 1)) !== 0) throw new PasswordHashError(`scrypt N must be a power of two up to 2^20 (got ${N})`);
  if (r < 1 || r > 32 || p < 1 || p > 16) throw new PasswordHashError(`scrypt r must be 1..32 and p 1..16 (got r=${r}, p=${p})`);
  const salt = Buffer.from(m[4]!, 'base64');
  const hash = Buffer.from(m[5]!, 'base64');
  if (salt.length < 8) throw new PasswordHashError('the salt must be at least 8 bytes');
  if (hash.length < 16) throw new PasswordHashError('the hash must be at least 16 bytes');
  return { N, r, p, salt, hash };
}

export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_LENGTH);
  const hash = await scrypt(password, salt, params, KEY_LENGTH);
  return `scrypt$N=${params.N},r=${params.r},p=${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: ParsedHash): Promise<boolean> {
  const candidate = await scrypt(password, stored.salt, stored, stored.hash.length);
  return timingSafeEqual(candidate, stored.hash);
}

/** Checked when the user name is unknown, so that a miss costs as much time as a wrong password. */
export const DUMMY_HASH: ParsedHash = { ...DEFAULT_SCRYPT, salt: Buffer.alloc(SALT_LENGTH, 1), hash: Buffer.alloc(KEY_LENGTH, 0) };

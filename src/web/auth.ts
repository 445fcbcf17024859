/**
 * Who may use the status page. On loopback without configuration it is open, as the admin listener always
 * was (but only under a loopback Host name, so a DNS-rebinding page cannot reach it); bound elsewhere it
 * needs a login (admin users with scrypt hashes) or the bearer token, and without either it stays shut.
 * Sessions are random ids in an HttpOnly, SameSite=Strict cookie; every POST needs the session's CSRF token.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { DUMMY_HASH, parsePasswordHash, verifyPassword } from '../config/password-hash.js';
import type { AdminAuthConfig } from '../config/visibility.js';

export const COOKIE = 'relay_session';
const SESSION_IDLE_MS = 60 * 60_000;
const SESSION_MAX_MS = 12 * 60 * 60_000;
const MAX_FAILURES = 5;
const LOCKOUT_MS = 15 * 60_000;

export type AuthMode = 'open' | 'login' | 'closed';

export interface Who {
  /** A user name, "token", or "loopback" (open mode). */
  name: string;
  /** The CSRF token POSTs must carry; null for bearer-token requests (no ambient credential to forge). */
  csrf: string | null;
  sessionId: string | null;
}

interface Session {
  name: string;
  csrf: string;
  created: number;
  seen: number;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

export function cookieValue(req: IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

export class PageAuth {
  readonly mode: AuthMode;
  private readonly sessions = new Map<string, Session>();
  private readonly failures = new Map<string, { n: number; until: number }>();
  /** Open mode's CSRF token: one per process (there is no session to hang it on). */
  private readonly openCsrf = randomBytes(24).toString('base64url');

  constructor(
    private readonly cfg: AdminAuthConfig,
    loopback: boolean,
    private readonly now: () => number = Date.now,
  ) {
    this.mode = cfg.token || cfg.users.length > 0 ? 'login' : loopback ? 'open' : 'closed';
  }

  get protectsMetrics(): boolean {
    return this.cfg.protectMetrics;
  }

  /** Open mode answers only to a loopback Host: a rebinding attacker's name resolving to 127.0.0.1 is refused. */
  hostAllowed(req: IncomingMessage): boolean {
    if (this.mode !== 'open') return true;
    const host = (req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '');
    return host === '127.0.0.1' || host === 'localhost' || host === '[::1]' || host.startsWith('127.');
  }

  bearer(req: IncomingMessage): boolean {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    return !!(m && this.cfg.token && sameSecret(m[1]!, this.cfg.token));
  }

  /** Who makes this request, or null (log in first). */
  who(req: IncomingMessage): Who | null {
    if (this.mode === 'closed') return null;
    if (this.bearer(req)) return { name: 'token', csrf: null, sessionId: null };
    if (this.mode === 'open') return { name: 'loopback', csrf: this.openCsrf, sessionId: null };
    const id = cookieValue(req, COOKIE);
    const s = id ? this.sessions.get(id) : undefined;
    const now = this.now();
    if (!id || !s) return null;
    if (now - s.seen > SESSION_IDLE_MS || now - s.created > SESSION_MAX_MS) {
      this.sessions.delete(id);
      return null;
    }
    s.seen = now;
    return { name: s.name, csrf: s.csrf, sessionId: id };
  }

  /** A POST's CSRF check: the header must carry the session's token (bearer requests carry none). */
  csrfOk(who: Who, req: IncomingMessage): boolean {
    if (who.csrf === null) return true;
    const sent = req.headers['x-csrf-token'];
    return typeof sent === 'string' && sameSecret(sent, who.csrf);
  }

  /** The login form: an admin user's password, or the token (user name "token"). A failed try costs one scrypt either way. */
  async login(client: string, username: string, password: string): Promise<{ ok: true; sessionId: string; name: string } | { ok: false; locked: boolean }> {
    const now = this.now();
    const f = this.failures.get(client);
    if (f && f.until > now) return { ok: false, locked: true };
    const user = this.cfg.users.find((u) => u.username === username);
    const tokenLogin = username === 'token' && !user && this.cfg.token !== null;
    const hashOk = await verifyPassword(password, user ? parsePasswordHash(user.passwordHash) : DUMMY_HASH);
    const ok = tokenLogin ? sameSecret(password, this.cfg.token!) : hashOk && !!user;
    if (!ok) {
      const n = (f && f.until <= now && f.n >= MAX_FAILURES ? 0 : (f?.n ?? 0)) + 1;
      this.failures.set(client, { n, until: n >= MAX_FAILURES ? now + LOCKOUT_MS : 0 });
      return { ok: false, locked: n >= MAX_FAILURES };
    }
    this.failures.delete(client);
    const sessionId = randomBytes(32).toString('base64url');
    this.sessions.set(sessionId, { name: username, csrf: randomBytes(24).toString('base64url'), created: now, seen: now });
    return { ok: true, sessionId, name: username };
  }

  logout(who: Who): void {
    if (who.sessionId) this.sessions.delete(who.sessionId);
  }

  sessionCookie(id: string): string {
    return `${COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_MAX_MS / 1000}`;
  }

  static clearCookie(): string {
    return `${COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;
  }
}

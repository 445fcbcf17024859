/** The status page's routes on the admin listener: the page, its JSON API, login, and the actions (POST, CSRF-checked, logged with who did them). */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { parseQuery, QueryError, type QueryFields } from '../history/query.js';
import type { Logger } from '../observability/logger.js';
import { PageAuth, type Who } from './auth.js';
import { PAGE_HTML } from './page.js';
import { PAGE_SCRIPT } from './page-script.js';
import { PAGE_STYLE } from './page-style.js';
import type { PageAction, StatusSource } from './source.js';

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
const QID = /^[0-9A-Za-z]{12}$/;
const MAX_BODY = 16 * 1024;

function headers(res: ServerResponse, type: string): void {
  res.setHeader('content-type', type);
  res.setHeader('content-security-policy', CSP);
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('referrer-policy', 'no-referrer');
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('cache-control', 'no-store');
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  headers(res, type);
  res.writeHead(status);
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new QueryError('request body too large');
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  const type = req.headers['content-type'] ?? '';
  if (type.startsWith('application/x-www-form-urlencoded')) return Object.fromEntries(new URLSearchParams(text));
  const v = JSON.parse(text) as unknown;
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
}

export class StatusPage {
  constructor(
    readonly auth: PageAuth,
    private readonly source: StatusSource,
    private readonly log: Logger,
  ) {}

  metricsAllowed(req: IncomingMessage): boolean {
    return !this.auth.protectsMetrics || this.auth.bearer(req);
  }

  /** True when the path is the page's (answered here); false: not ours (the admin listener answers 404). */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const p = url.pathname;
    if (p === '/' || p === '/ui') {
      res.writeHead(302, { location: '/ui/' }).end();
      return true;
    }
    if (!p.startsWith('/ui/')) return false;
    if (!this.auth.hostAllowed(req)) {
      json(res, 421, { error: 'the status page answers only to 127.0.0.1, localhost or [::1] while admin.auth is not configured' });
      return true;
    }
    if (req.method === 'GET' && p === '/ui/') send(res, 200, 'text/html; charset=utf-8', PAGE_HTML);
    else if (req.method === 'GET' && p === '/ui/app.js') send(res, 200, 'text/javascript; charset=utf-8', PAGE_SCRIPT);
    else if (req.method === 'GET' && p === '/ui/app.css') send(res, 200, 'text/css; charset=utf-8', PAGE_STYLE);
    else if (req.method === 'POST' && p === '/ui/login') await this.login(req, res);
    else await this.api(req, res, url);
    return true;
  }

  private client(req: IncomingMessage): string {
    return req.socket.remoteAddress ?? 'unknown';
  }

  /** A browser's POST from another site (or a page of another origin) is refused before anything else. */
  private crossSite(req: IncomingMessage): boolean {
    const site = req.headers['sec-fetch-site'];
    if (site === 'cross-site' || site === 'same-site') return true;
    const origin = req.headers.origin;
    return origin !== undefined && origin !== 'null' && origin !== `http://${req.headers.host}` && origin !== `https://${req.headers.host}`;
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.crossSite(req)) return json(res, 403, { error: 'cross-site request refused' });
    if (this.auth.mode !== 'login') return json(res, 400, { error: this.auth.mode === 'open' ? 'no login needed on loopback' : 'no admin users or token configured (admin.auth)' });
    const body = await readBody(req).catch(() => ({}) as Record<string, unknown>);
    const username = typeof body.username === 'string' ? body.username.slice(0, 128) : '';
    const password = typeof body.password === 'string' ? body.password.slice(0, 1024) : '';
    const r = await this.auth.login(this.client(req), username, password);
    if (!r.ok) {
      this.log.warn({ event: 'admin-login-failed', user: username, client: this.client(req), locked: r.locked }, 'status page: login failed');
      return json(res, r.locked ? 429 : 401, { error: r.locked ? 'too many failed logins: try again in 15 minutes' : 'wrong user name or password' });
    }
    this.log.info({ event: 'admin-login', who: r.name, client: this.client(req) }, 'status page: logged in');
    res.setHeader('set-cookie', this.auth.sessionCookie(r.sessionId));
    json(res, 200, { user: r.name });
  }

  // long because: one table of the API's routes, each a line or two, reads better than a dispatcher over handlers.
  private async api(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const p = url.pathname;
    const who = this.auth.who(req);
    if (!who) {
      const why = this.auth.mode === 'closed' ? 'the admin listener is not on loopback and admin.auth has no users or token: the status page stays shut' : 'log in first';
      return json(res, 401, { error: why, mode: this.auth.mode });
    }
    if (req.method === 'POST') {
      if (this.crossSite(req) || !this.auth.csrfOk(who, req)) {
        this.log.warn({ event: 'admin-denied', who: who.name, client: this.client(req), path: p }, 'status page: POST without a valid CSRF token refused');
        return json(res, 403, { error: 'missing or wrong CSRF token' });
      }
      if (p === '/ui/api/logout') {
        this.auth.logout(who);
        res.setHeader('set-cookie', PageAuth.clearCookie());
        return json(res, 200, { ok: true });
      }
      const m = /^\/ui\/api\/message\/([^/]+)\/(retry|requeue|delete)$/.exec(p);
      if (!m || !QID.test(m[1]!)) return json(res, 404, { error: 'no such action' });
      return this.act(res, who, m[2] as PageAction, m[1]!, this.client(req));
    }
    if (req.method !== 'GET') return json(res, 405, { error: 'method not allowed' });
    if (p === '/ui/api/session') return json(res, 200, { user: who.name, csrf: who.csrf, mode: this.auth.mode });
    if (p === '/ui/api/summary') return json(res, 200, await this.source.summary());
    if (p === '/ui/api/mailboxes') return json(res, 200, await this.source.mailboxes());
    if (p === '/ui/api/dead') return json(res, 200, await this.source.deadLetters());
    if (p === '/ui/api/devices') return json(res, 200, { now: Date.now(), devices: this.source.devices() });
    if (p === '/ui/api/search') {
      try {
        const q = parseQuery(Object.fromEntries(url.searchParams) as QueryFields);
        return json(res, 200, await this.source.search(q));
      } catch (err) {
        return json(res, 400, { error: (err as Error).message });
      }
    }
    const m = /^\/ui\/api\/message\/([^/]+)(\/trace|\/eml)?$/.exec(p);
    if (!m || !QID.test(m[1]!)) return json(res, 404, { error: 'not found' });
    const qid = m[1]!;
    if (m[2] === '/trace') return json(res, 200, await this.source.trace(qid));
    if (m[2] === '/eml') return this.eml(res, who, qid, this.client(req));
    const story = await this.source.story(qid);
    return story ? json(res, 200, story) : json(res, 404, { error: `no message ${qid} in the history` });
  }

  private async act(res: ServerResponse, who: Who, action: PageAction, qid: string, client: string): Promise<void> {
    const r = await this.source.act(action, qid, who.name);
    this.log.info({ event: 'admin-action', who: who.name, client, action, qid, ok: r.ok, result: r.message }, `status page: ${action} ${qid} by ${who.name}`);
    json(res, r.ok ? 200 : 409, r);
  }

  private async eml(res: ServerResponse, who: Who, qid: string, client: string): Promise<void> {
    const m = await this.source.eml(qid);
    if (!m) return json(res, 404, { error: `${qid} is neither queued nor in the dead-letter folder: only those are kept` });
    this.log.info({ event: 'admin-export', who: who.name, client, qid, size: m.size }, `status page: ${qid} exported as .eml by ${who.name}`);
    headers(res, 'message/rfc822');
    res.setHeader('content-disposition', `attachment; filename="${qid}.eml"`);
    res.setHeader('content-length', String(m.size));
    res.writeHead(200);
    await pipeline(m.open(), res);
  }
}

/**
 * The status page's HTTP surface on a real admin listener: who may see it (loopback, login, token, shut),
 * CSRF and cross-site refusals, security headers, every action logged with who did it, the .eml download.
 */

import { mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/config/password-hash.js';
import type { AdminAuthConfig } from '../../src/config/visibility.js';
import { AdminServer } from '../../src/observability/admin.js';
import { createLogger } from '../../src/observability/logger.js';
import { RelayMetrics } from '../../src/observability/metrics.js';
import { ReadinessCheck } from '../../src/observability/readiness.js';
import { PageAuth } from '../../src/web/auth.js';
import { StatusPage } from '../../src/web/routes.js';
import type { StatusSource } from '../../src/web/source.js';

const QID = '4gQNHjd0m2k8';
const TOKEN = 'a'.repeat(40);
const EML = 'Subject: hi\r\n\r\nbody\r\n';

function source(acts: string[]): StatusSource {
  return {
    summary: async () => ({ queued: 1, oldestQueuedSeconds: 5, dead: 1, oldestDeadSeconds: 9, inFlight: 0, devices: 2, devicesSilent: 1, history: true, now: Date.now() }),
    mailboxes: async () => [],
    deadLetters: async () => [{ qid: QID, receivedAt: new Date().toISOString(), mailbox: 'm@contoso.example', sender: 's@contoso.example', rcpts: ['<b>@x'], size: 10, attempts: 1, lastError: '<script>alert(1)</script>' }],
    search: async (q) => [{ qid: QID, at: 0, listener: 'default', client: String(q.client ?? ''), user: null, tls: null, helo: '', sender: '', rcpts: [], mailbox: '', account: null, messageId: null, size: 0, subject: null, state: 'dead', stateAt: 0, attempts: 1, lastError: null }],
    story: async (qid) => (qid === QID ? { qid, at: 0, listener: 'default', client: '10.0.0.1', user: null, tls: null, helo: '', sender: '', rcpts: [], mailbox: '', account: null, messageId: null, size: 0, subject: null, state: 'dead', stateAt: 0, attempts: 1, lastError: null, events: [], spool: 'dead' } : null),
    devices: () => [],
    act: async (action, qid, by) => {
      acts.push(`${action} ${qid} ${by}`);
      return { ok: true, message: `${qid}: done` };
    },
    eml: async (qid) => (qid === QID ? { size: EML.length, open: () => Readable.from([Buffer.from(EML)]) } : null),
    trace: async () => ({ status: 'no-permission', message: 'grant ExchangeMessageTrace.Read.All' }),
  };
}

const servers: AdminServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function serve(auth: AdminAuthConfig, loopback: boolean): Promise<{ base: string; acts: string[]; logs: Record<string, unknown>[] }> {
  const logs: Record<string, unknown>[] = [];
  const log = createLogger('info', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const acts: string[] = [];
  const page = new StatusPage(new PageAuth(auth, loopback), source(acts), log);
  const readiness = new ReadinessCheck({ probeDir: mkdtempSync(path.join(tmpdir(), 'probe-')), tokens: null, stopping: () => false });
  const admin = new AdminServer(new RelayMetrics({ processMetrics: false }), readiness, log, page);
  servers.push(admin);
  const a = await admin.listen('127.0.0.1', 0);
  return { base: `http://127.0.0.1:${a.port}`, acts, logs };
}

/** fetch() sets Host itself; node:http lets a test send the one a rebinding page would. */
function statusWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

const none: AdminAuthConfig = { token: null, users: [], protectMetrics: false };

describe('status page routes', () => {
  it('open on loopback: the page and API answer, with a strict CSP; a POST needs the CSRF token; a rebinding Host is refused', async () => {
    const { base, acts, logs } = await serve(none, true);
    const page = await fetch(`${base}/ui/`);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const html = await page.text();
    expect(html).not.toMatch(/<script>|<style>|\sstyle=|\son[a-z]+="/);
    expect(html).not.toMatch(/https?:\/\//);
    expect((await fetch(`${base}/ui/app.js`)).headers.get('content-type')).toMatch(/javascript/);
    const session = (await (await fetch(`${base}/ui/api/session`)).json()) as { user: string; csrf: string; mode: string };
    expect(session).toMatchObject({ user: 'loopback', mode: 'open' });
    expect((await fetch(`${base}/ui/api/message/${QID}/requeue`, { method: 'POST' })).status).toBe(403);
    expect((await fetch(`${base}/ui/api/message/${QID}/requeue`, { method: 'POST', headers: { 'x-csrf-token': session.csrf, origin: 'http://evil.example' } })).status).toBe(403);
    expect((await fetch(`${base}/ui/api/message/${QID}/requeue`, { method: 'POST', headers: { 'x-csrf-token': session.csrf, 'sec-fetch-site': 'cross-site' } })).status).toBe(403);
    const ok = await fetch(`${base}/ui/api/message/${QID}/requeue`, { method: 'POST', headers: { 'x-csrf-token': session.csrf } });
    expect(ok.status).toBe(200);
    expect(acts).toEqual([`requeue ${QID} loopback`]);
    expect(logs.find((l) => l.event === 'admin-action')).toMatchObject({ who: 'loopback', action: 'requeue', qid: QID, ok: true });
    expect(logs.filter((l) => l.event === 'admin-denied')).toHaveLength(3);
    // DNS rebinding: a name of the attacker's that resolves to 127.0.0.1 is not a loopback Host.
    expect(await statusWithHost(`${base}/ui/api/summary`, 'rebind.evil.example:80')).toBe(421);
    expect(await statusWithHost(`${base}/ui/api/summary`, 'localhost:8025')).toBe(200);
    // Probes stay as they were.
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
  });

  it('off loopback without admin.auth: shut, while probes and metrics keep working', async () => {
    const { base } = await serve(none, false);
    const r = await fetch(`${base}/ui/api/summary`);
    expect(r.status).toBe(401);
    expect(await r.json()).toMatchObject({ mode: 'closed', error: expect.stringContaining('admin.auth') });
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
  });

  it('with admin users: log in (scrypt), session cookie, CSRF per session, lockout after 5 failures, logout', async () => {
    const { base, acts, logs } = await serve({ token: TOKEN, users: [{ username: 'alice', passwordHash: await hashPassword('correct horse', { N: 1024, r: 8, p: 1 }) }], protectMetrics: true }, false);
    expect((await fetch(`${base}/ui/api/summary`)).status).toBe(401);
    const bad = await fetch(`${base}/ui/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'wrong' }) });
    expect(bad.status).toBe(401);
    const login = await fetch(`${base}/ui/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'correct horse' }) });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const jar = cookie.split(';')[0]!;
    const s = (await (await fetch(`${base}/ui/api/session`, { headers: { cookie: jar } })).json()) as { user: string; csrf: string };
    expect(s.user).toBe('alice');
    expect((await fetch(`${base}/ui/api/message/${QID}/delete`, { method: 'POST', headers: { cookie: jar } })).status).toBe(403);
    expect((await fetch(`${base}/ui/api/message/${QID}/delete`, { method: 'POST', headers: { cookie: jar, 'x-csrf-token': s.csrf } })).status).toBe(200);
    // The bearer token works without a cookie, so without CSRF (nothing ambient to forge).
    expect((await fetch(`${base}/ui/api/message/${QID}/retry`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect(acts).toEqual([`delete ${QID} alice`, `retry ${QID} token`]);
    // /metrics needs the token (protectMetrics); probes never do.
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    expect((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    // The .eml download, logged with who.
    const eml = await fetch(`${base}/ui/api/message/${QID}/eml`, { headers: { cookie: jar } });
    expect(eml.headers.get('content-disposition')).toBe(`attachment; filename="${QID}.eml"`);
    expect(await eml.text()).toBe(EML);
    expect(logs.find((l) => l.event === 'admin-export')).toMatchObject({ who: 'alice', qid: QID });
    expect((await fetch(`${base}/ui/api/logout`, { method: 'POST', headers: { cookie: jar, 'x-csrf-token': s.csrf } })).status).toBe(200);
    expect((await fetch(`${base}/ui/api/session`, { headers: { cookie: jar } })).status).toBe(401);
    for (let i = 0; i < 5; i++) await fetch(`${base}/ui/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: `nope${i}` }) });
    const locked = await fetch(`${base}/ui/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'correct horse' }) });
    expect(locked.status).toBe(429);
    expect(logs.filter((l) => l.event === 'admin-login-failed').length).toBeGreaterThanOrEqual(6);
    expect(JSON.stringify(logs)).not.toContain('correct horse');
  });

  it('answers search, story and trace as JSON; a bad query is a 400 that says why', async () => {
    const { base } = await serve(none, true);
    expect(await (await fetch(`${base}/ui/api/search?client=10.0.0.9`)).json()).toMatchObject([{ qid: QID, client: '10.0.0.9' }]);
    expect((await fetch(`${base}/ui/api/search?since=yesterday`)).status).toBe(400);
    expect((await fetch(`${base}/ui/api/message/${QID}`)).status).toBe(200);
    expect((await fetch(`${base}/ui/api/message/0000000000zz`)).status).toBe(404);
    expect((await fetch(`${base}/ui/api/message/..%2f..%2fetc`)).status).toBe(404);
    expect(await (await fetch(`${base}/ui/api/message/${QID}/trace`)).json()).toMatchObject({ status: 'no-permission' });
    expect((await fetch(`${base}/`, { redirect: 'manual' })).headers.get('location')).toBe('/ui/');
  });
});

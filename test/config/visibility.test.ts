/** The status page's and the history's settings: defaults, the admin token and users, and what is refused. */

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig, redactConfig } from '../../src/config/load.js';
import { hashPassword } from '../../src/config/password-hash.js';
import { isLoopback } from '../../src/config/visibility.js';

const env = { RELAY_FALLBACK_MAILBOX: 'relay@contoso.example', RELAY_DELIVERY: 'capture' };

describe('history and admin.auth settings', () => {
  it('defaults: history on, in the spool folder, 30 days, 1 GB, no subjects; no admin auth', () => {
    const c = buildConfig({ spool: { directory: '/var/spool/relay' } }, env);
    expect(c.history).toEqual({ enabled: true, file: '/var/spool/relay/history.db', retentionMs: 30 * 86_400_000, maxBytes: 1024 ** 3, storeSubjects: false, silenceFactor: 4, minSilenceMs: 3_600_000, messageTrace: true });
    expect(c.admin.auth).toEqual({ token: null, users: [], protectMetrics: false });
  });

  it('reads the history settings and refuses nonsense, naming the key', () => {
    const c = buildConfig({ history: { retention: '7d', maxSize: '200MB', storeSubjects: true, devices: { silenceFactor: 3, minSilence: '30m' }, file: 'h.db' } }, env);
    expect(c.history).toMatchObject({ retentionMs: 7 * 86_400_000, maxBytes: 200 * 1024 ** 2, storeSubjects: true, silenceFactor: 3, minSilenceMs: 30 * 60_000 });
    expect(path.isAbsolute(c.history.file)).toBe(true);
    expect(() => buildConfig({ history: { retention: '10m' } }, env)).toThrow(/history\.retention/);
    expect(() => buildConfig({ history: { devices: { silenceFactor: 0 } } }, env)).toThrow(/history\.devices\.silenceFactor/);
    expect(() => buildConfig({ history: { subjects: true } }, env)).toThrow(/history\.subjects.*unknown setting/);
  });

  it('takes the token from RELAY_ADMIN_TOKEN or a file, users with scrypt hashes, and redacts both', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'admin-'));
    writeFileSync(path.join(dir, 'token'), `${'t'.repeat(32)}\n`);
    const passwordHash = await hashPassword('pw', { N: 1024, r: 8, p: 1 });
    const c = buildConfig({ admin: { host: '0.0.0.0', auth: { tokenFile: path.join(dir, 'token'), users: [{ username: 'alice', passwordHash }], protectMetrics: true } } }, env);
    expect(c.admin.auth).toEqual({ token: 't'.repeat(32), users: [{ username: 'alice', passwordHash }], protectMetrics: true });
    expect(buildConfig({}, { ...env, RELAY_ADMIN_TOKEN: 'x'.repeat(30) }).admin.auth.token).toBe('x'.repeat(30));
    const shown = JSON.stringify(redactConfig(c));
    expect(shown).not.toContain('t'.repeat(32));
    expect(shown).not.toContain(passwordHash);
  });

  it('refuses a short token, a plaintext password, and protectMetrics without a token', () => {
    expect(() => buildConfig({}, { ...env, RELAY_ADMIN_TOKEN: 'short' })).toThrow(/RELAY_ADMIN_TOKEN.*24 characters/);
    expect(() => buildConfig({ admin: { auth: { users: [{ username: 'a', passwordHash: 'hunter2' }] } } }, env)).toThrow(/admin\.auth\.users\[0\]\.passwordHash.*never a plaintext password/);
    expect(() => buildConfig({ admin: { auth: { protectMetrics: true } } }, env)).toThrow(/protectMetrics.*needs a token/);
  });

  it('knows loopback', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) expect(isLoopback(h)).toBe(true);
    for (const h of ['0.0.0.0', '10.0.0.1', '::']) expect(isLoopback(h)).toBe(false);
  });
});

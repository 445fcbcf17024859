/**
 * An outbound proxy (issue 20) through a real one, tinyproxy: every request of the relay (tenant discovery,
 * token, sendMail, the large route's drafts and upload URLs) goes through it, with Basic credentials on the
 * CONNECT (407 without them), never the password in a log line; NO_PROXY and graph.proxy are honoured.
 */

import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { message, relayConfig, useTestbed } from '../helpers/graph-relay.js';
import { composeToFile, randomFile, sendFile } from '../helpers/large-mail.js';
import { CLI } from '../helpers/relay-process.js';
import { pySend } from '../helpers/smtp-clients.js';
import { PROXY_PEER, startTinyproxy, type Tinyproxy } from '../helpers/tinyproxy.js';

const USER = 'relay';
const PASSWORD = 'Pr0xy-s3cret';
const bed = useTestbed();
let proxy: Tinyproxy;
beforeAll(async () => {
  proxy = await startTinyproxy({ user: USER, password: PASSWORD });
});
afterAll(async () => {
  await proxy?.stop();
});

const withCredentials = (): string => proxy.url.replace('http://', `http://${USER}:${PASSWORD}@`);
const mail = (subject: string): Buffer => message({ From: 'printer@contoso.example', To: 'alice@contoso.example', Subject: subject }, 'hello\r\n');

describe('an outbound proxy', () => {
  it('carries every request, token and Graph alike (the large route too), with the CONNECT authenticated; the password is never logged', async () => {
    const relay = await bed.relay({}, { env: { https_proxy: withCredentials() } });
    expect(await pySend(relay.smtpPort, 'printer@contoso.example', ['alice@contoso.example'], mail('small'))).toMatchObject({ ok: true });
    const blob = await randomFile(4_500_000);
    await sendFile(relay.smtpPort, 'printer@contoso.example', ['alice@contoso.example'], await composeToFile({ from: 'printer@contoso.example', to: 'alice@contoso.example', subject: 'large', text: 'see attached', attachments: [{ filename: 'scan.pdf', path: blob.path }] }));
    await bed.emu.waitForSent(2);
    expect(bed.emu.sentDrafts).toHaveLength(1); // the large route: a draft, an upload session, its upload URL
    const paths = bed.emu.peers.map((p) => p.path);
    expect(paths.some((p) => p.endsWith('/.well-known/openid-configuration'))).toBe(true);
    expect(paths.some((p) => p.endsWith('/oauth2/v2.0/token'))).toBe(true);
    expect(paths.some((p) => p.startsWith('/_upload/'))).toBe(true);
    expect(new Set(bed.emu.peers.map((p) => p.remoteAddress))).toEqual(new Set([PROXY_PEER]));
    expect(proxy.connects()).toContain(`CONNECT 127.0.0.1:${bed.emu.port} HTTP/1.1`);
    const proxyLine = await relay.waitForLog((l) => l.event === 'proxy');
    expect(proxyLine).toMatchObject({ proxy: proxy.url, source: 'https_proxy', auth: true });
    expect(JSON.stringify(relay.logs)).not.toContain(PASSWORD);
  });

  it('without credentials the proxy answers 407: the token failure says so, names the proxy, and the mail waits in the queue', async () => {
    const connectsBefore = proxy.connects().length;
    const relay = await bed.relay({}, { env: { HTTPS_PROXY: proxy.url } });
    const failed = await relay.waitForLog((l) => l.event === 'token-failed');
    expect(failed.msg).toMatch(new RegExp(`via proxy http://127\\.0\\.0\\.1:${proxy.port}: the proxy refused the tunnel: HTTP 407 Proxy Authentication Required`));
    expect(await pySend(relay.smtpPort, 'printer@contoso.example', ['alice@contoso.example'], mail('waits'))).toMatchObject({ ok: true });
    const deferred = await relay.waitForLog((l) => l.event === 'deferred');
    expect(deferred).toMatchObject({ reason: 'token-unavailable', account: 'default' });
    expect(proxy.connects().length).toBeGreaterThan(connectsBefore);
    expect(bed.emu.peers).toEqual([]); // nothing got past the proxy
  });

  it('NO_PROXY sends the named hosts directly', async () => {
    const connectsBefore = proxy.connects().length;
    const relay = await bed.relay({}, { env: { HTTPS_PROXY: withCredentials(), NO_PROXY: `example.org, 127.0.0.1:${bed.emu.port}` } });
    expect(await pySend(relay.smtpPort, 'printer@contoso.example', ['alice@contoso.example'], mail('direct'))).toMatchObject({ ok: true });
    await bed.emu.waitForSent(1);
    expect(new Set(bed.emu.peers.map((p) => p.remoteAddress))).toEqual(new Set(['127.0.0.1']));
    expect(proxy.connects().length).toBe(connectsBefore);
  });

  it('graph.proxy with separate username and password wins over HTTPS_PROXY; check-config shows it without the password', async () => {
    const graph = { proxy: { url: proxy.url, username: USER, password: PASSWORD } };
    const relay = await bed.relay({ graph }, { env: { HTTPS_PROXY: 'http://127.0.0.1:9' } });
    expect(await pySend(relay.smtpPort, 'printer@contoso.example', ['alice@contoso.example'], mail('configured'))).toMatchObject({ ok: true });
    await bed.emu.waitForSent(1);
    expect(new Set(bed.emu.peers.map((p) => p.remoteAddress))).toEqual(new Set([PROXY_PEER]));
    const dir = mkdtempSync(path.join(tmpdir(), 'proxy-check-'));
    const file = path.join(dir, 'relay.yaml');
    writeFileSync(file, stringify(relayConfig(bed.emu, { graph })));
    const out = await new Promise<string>((resolve, reject) => execFile(process.execPath, [CLI, 'check-config', '-c', file], (err, stdout) => (err ? reject(err) : resolve(stdout))));
    const shown = JSON.parse(out) as { graph: { proxy: Record<string, unknown> } };
    expect(shown.graph.proxy).toEqual({ url: proxy.url, username: USER, password: '[redacted]', noProxy: [], source: 'graph.proxy' });
    expect(out).not.toContain(PASSWORD);
  });
});

/** Configuration: defaults, environment, *_FILE secrets, clouds, and errors that name the key. */

import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig, redactConfig } from '../../src/config/load.js';
import { parseDuration, parseSize } from '../../src/config/units.js';
import { ConfigError } from '../../src/errors.js';

const creds = { AZURE_TENANT_ID: '6f1d3c2b-8a4e-4b7f-9c5d-2e0a1b3c4d5e', AZURE_CLIENT_ID: '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f', AZURE_CLIENT_SECRET: 's3cret', RELAY_SENDER_DOMAINS: 'contoso.example' };

function configError(raw: unknown, env: NodeJS.ProcessEnv = creds): string {
  try {
    buildConfig(raw, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('has conservative defaults: loopback only, port 2525, 4 per mailbox, 5 days in the queue', () => {
    const c = buildConfig({}, creds);
    expect(c.listeners).toHaveLength(1);
    expect(c.listeners[0]).toMatchObject({ name: 'default', host: '127.0.0.1', port: 2525, allowedNetworks: ['127.0.0.0/8', '::1/128'] });
    expect(c.graph.graphUrl).toBe('https://graph.microsoft.com');
    expect(c.graph.authorityHost).toBe('https://login.microsoftonline.com');
    expect(c.delivery.retry.maxQueueLifetimeMs).toBe(5 * 86_400_000);
    expect(c.delivery.perMailboxConcurrency).toBe(4);
  });

  it('greets at once by default; listeners[].greetingDelay turns the early-talker pause on, up to a minute', () => {
    expect(buildConfig({}, creds).listeners[0]!.greetingDelayMs).toBe(0);
    expect(buildConfig({ listeners: [{ greetingDelay: '1s' }] }, creds).listeners[0]!.greetingDelayMs).toBe(1000);
    expect(() => buildConfig({ listeners: [{ greetingDelay: '5m' }] }, creds)).toThrow(/listeners\[0\]\.greetingDelay/);
  });

  it('graph.caFile: the authorities in it are trusted besides the system\'s; a missing file or one without a certificate names the key', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ca-file-'));
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    void publicKey;
    expect(buildConfig({}, creds).graph.trustedCa).toBeNull();
    writeFileSync(path.join(dir, 'none.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
    expect(configError({ graph: { caFile: path.join(dir, 'none.pem') } })).toMatch(/^graph\.caFile: .*holds no PEM certificate/);
    expect(configError({ graph: { caFile: path.join(dir, 'missing.pem') } })).toMatch(/^graph\.caFile: cannot read .*missing\.pem: ENOENT/);
    writeFileSync(path.join(dir, 'bad.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    expect(configError({ graph: { caFile: path.join(dir, 'bad.pem') } })).toMatch(/^graph\.caFile: .*does not parse/);
  });

  it('batches log lines for at most 200 ms by default; 0 writes each at once; the key is named when out of range', () => {
    expect(buildConfig({}, creds).log).toEqual({ level: 'info', flushIntervalMs: 200 });
    expect(buildConfig({ log: { flushInterval: '0s' } }, creds).log.flushIntervalMs).toBe(0);
    expect(() => buildConfig({ log: { flushInterval: '1h' } }, creds)).toThrow(/log\.flushInterval/);
  });

  it('looks an unknown outcome up 6 times 10 s apart by default; 0 look-ups is allowed, a bad value named', () => {
    expect(buildConfig({}, creds).delivery.unknownOutcome).toEqual({ lookups: 6, intervalMs: 10_000 });
    expect(buildConfig({ delivery: { unknownOutcome: { lookups: 0, interval: '2s' } } }, creds).delivery.unknownOutcome).toEqual({ lookups: 0, intervalMs: 2000 });
    expect(() => buildConfig({ delivery: { unknownOutcome: { lookups: -1 } } }, creds)).toThrow(/delivery\.unknownOutcome\.lookups/);
    expect(() => buildConfig({ delivery: { unknownOutcome: { interval: '10ms' } } }, creds)).toThrow(/delivery\.unknownOutcome\.interval/);
    expect(() => buildConfig({ delivery: { unknownOutcome: { wait: '1m' } } }, creds)).toThrow(/delivery\.unknownOutcome\.wait/);
  });

  it.each([
    ['usgov', 'https://graph.microsoft.us', 'https://login.microsoftonline.us'],
    ['usgov-dod', 'https://dod-graph.microsoft.us', 'https://login.microsoftonline.us'],
    ['china', 'https://microsoftgraph.chinacloudapi.cn', 'https://login.partner.microsoftonline.cn'],
  ])('selects the %s cloud endpoints', (cloud, graphUrl, authorityHost) => {
    const c = buildConfig({ graph: { cloud } }, creds);
    expect([c.graph.graphUrl, c.graph.authorityHost]).toEqual([graphUrl, authorityHost]);
  });

  it('lets explicit URLs and AZURE_AUTHORITY_HOST override the cloud', () => {
    const c = buildConfig({ graph: { cloud: 'china', graphUrl: 'https://127.0.0.1:8443' } }, { ...creds, AZURE_AUTHORITY_HOST: 'https://login.example.test/' });
    expect(c.graph.graphUrl).toBe('https://127.0.0.1:8443');
    expect(c.graph.authorityHost).toBe('https://login.example.test');
  });

  it('reads secrets from *_FILE and never prints them', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cfg-'));
    writeFileSync(path.join(dir, 'secret'), 'from-file\n');
    const c = buildConfig({}, { AZURE_TENANT_ID: '6f1d3c2b-8a4e-4b7f-9c5d-2e0a1b3c4d5e', AZURE_CLIENT_ID: '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f', AZURE_CLIENT_SECRET_FILE: path.join(dir, 'secret'), RELAY_SENDER_DOMAINS: 'contoso.example' });
    expect(c.graph.clientSecret).toBe('from-file');
    expect(JSON.stringify(redactConfig(c))).not.toContain('from-file');
  });

  it('accepts sizes and durations with units', () => {
    expect(parseSize('35MB')).toBe(35 * 1024 * 1024);
    expect(parseSize('512k')).toBe(512 * 1024);
    expect(parseSize('12 parsecs')).toBeUndefined();
    expect(parseDuration('5d')).toBe(5 * 86_400_000);
    expect(parseDuration(30)).toBe(30_000);
    expect(parseDuration('250ms')).toBe(250);
  });

  it.each([
    [{ listeners: [{ prot: 25 }] }, /^listeners\[0\]\.prot: unknown setting/],
    [{ listeners: [{ port: 70000 }] }, /^listeners\[0\]\.port: must be a whole number from 0 to 65535/],
    [{ listeners: [{ allowedNetworks: ['10.0.0.0/33'] }] }, /^listeners\[0\]\.allowedNetworks\[0\]: "10\.0\.0\.0\/33" has a prefix length over 32/],
    [{ listeners: [{ allowedNetworks: ['printers'] }] }, /^listeners\[0\]\.allowedNetworks\[0\]: "printers" is not an IP address/],
    [{ delivery: { mode: 'grpah' } }, /^delivery\.mode: must be one of graph, capture \(got "grpah"\)/],
    [{ graph: { cloud: 'mars' } }, /^graph\.cloud: must be one of global, usgov, usgov-dod, china/],
    [{ graph: { graphUrl: 'http://graph.example' } }, /^graph\.graphUrl: must be an https:\/\/ URL/],
    [{ limits: { maxMessageSize: '5GB' } }, /^limits\.maxMessageSize: must be between 1024 and \d+ bytes/],
    [{ mailboxes: { map: { 'scanner@printer.local': 'not a mailbox' } } }, /^mailboxes\.map\.scanner@printer\.local: the mailbox must be a UPN/],
    [{ delivery: { retry: { schedule: ['soon'] } } }, /^delivery\.retry\.schedule\[0\]: must be a duration/],
    [{ spool: { dir: '/x' } }, /^spool\.dir: unknown setting/],
  ])('names the key at fault: %j', (raw, re) => {
    expect(configError(raw)).toMatch(re);
  });

  it('refuses graph mode without credentials instead of falling back to capture', () => {
    expect(configError({}, { AZURE_CLIENT_SECRET: 'x', AZURE_CLIENT_ID: '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f' })).toMatch(/^graph\.tenantId: is required when delivery\.mode is graph/);
    expect(configError({}, { AZURE_TENANT_ID: '6f1d3c2b-8a4e-4b7f-9c5d-2e0a1b3c4d5e', AZURE_CLIENT_ID: '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f' })).toMatch(/^graph\.\w+: .*client secret.*certificate/);
    expect(buildConfig({ delivery: { mode: 'capture' } }, { RELAY_FALLBACK_MAILBOX: 'relay@contoso.example' }).delivery.mode).toBe('capture');
  });
});

describe('tenant and client ids', () => {
  it('refuses a placeholder left in a template, naming the variable it came from', () => {
    const env = { ...creds, AZURE_TENANT_ID: 'REPLACE-with-your-tenant-id' };
    expect(configError({}, env)).toMatch(/^AZURE_TENANT_ID: "REPLACE-with-your-tenant-id" is not a tenant: use the Directory \(tenant\) ID/);
    expect(configError({ graph: { clientId: 'my-app' } }, { ...creds, AZURE_CLIENT_ID: '' })).toMatch(/^graph\.clientId: "my-app" is not a client id/);
    expect(buildConfig({}, { ...creds, AZURE_TENANT_ID: 'contoso.onmicrosoft.com' }).graph.tenantId).toBe('contoso.onmicrosoft.com');
  });
});

describe('no "accept anything" default: some sender must have a mailbox', () => {
  const base = { AZURE_TENANT_ID: '6f1d3c2b-8a4e-4b7f-9c5d-2e0a1b3c4d5e', AZURE_CLIENT_ID: '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f', AZURE_CLIENT_SECRET: 's' };

  it('refuses to start without sender domains, mappings or a fallback, naming the settings and their variables', () => {
    for (const mode of ['graph', 'capture']) {
      const msg = configError({ delivery: { mode } }, base);
      expect(msg).toMatch(/^mailboxes: no sender can be given a mailbox to send as/);
      for (const name of ['mailboxes.senderDomains (RELAY_SENDER_DOMAINS)', 'mailboxes.map (RELAY_MAILBOX_MAP)', 'mailboxes.fallback (RELAY_FALLBACK_MAILBOX)']) expect(msg).toContain(name);
    }
    expect(configError({ mailboxes: { senderDomains: ['contoso.example'], useEnvelopeSender: false } }, base)).toMatch(/useEnvelopeSender is off/);
    // Queue tools work on the spool alone.
    expect(buildConfig({}, {}, undefined, { requireCredentials: false, requireMailboxes: false }).mailboxes.senderDomains).toEqual([]);
  });

  it('takes each from the environment or the file; "*" is any domain, only when said', () => {
    expect(buildConfig({}, { ...base, RELAY_SENDER_DOMAINS: 'contoso.example, Fabrikam.example' }).mailboxes.senderDomains).toEqual(['contoso.example', 'fabrikam.example']);
    expect(buildConfig({}, { ...base, RELAY_FALLBACK_MAILBOX: 'noreply@contoso.example' }).mailboxes.fallback).toBe('noreply@contoso.example');
    expect(buildConfig({}, { ...base, RELAY_MAILBOX_MAP: 'Scanner@Printer.local=scans@contoso.example @printer.local=scans@contoso.example,<>=noreply@contoso.example' }).mailboxes.map).toEqual({
      'scanner@printer.local': 'scans@contoso.example',
      '@printer.local': 'scans@contoso.example',
      '<>': 'noreply@contoso.example',
    });
    expect(configError({}, { ...base, RELAY_MAILBOX_MAP: 'scanner@printer.local:scans@contoso.example' })).toMatch(/^RELAY_MAILBOX_MAP: "scanner@printer.local:scans@contoso.example" is not sender=mailbox/);
    expect(buildConfig({ mailboxes: { senderDomains: ['*'] } }, base).mailboxes.senderDomains).toEqual(['*']);
    expect(configError({ mailboxes: { senderDomains: ['*.example'] } }, base)).toMatch(/^mailboxes\.senderDomains\[0\]: must be a domain name, or "\*"/);
    expect(buildConfig({ users: [], policy: { networks: [{ cidr: '10.0.0.0/8', allowedSenders: ['@printer.local'], mailbox: 'scans@contoso.example' }] } }, base).policy.networks[0]!.mailbox).toBe('scans@contoso.example');
  });
});

describe('headers: limits.maxHeaderSize, headerOnlyRecipients, rewriteFrom', () => {
  it('defaults to Exchange Online: 256 KB of header, header-only recipients delivered, From rewritten with Reply-To', () => {
    const c = buildConfig({}, creds);
    expect(c.limits.maxHeaderSize).toBe(256 * 1024);
    expect(c.delivery.headerOnlyRecipients).toBe('deliver');
    expect(c.mailboxes).toMatchObject({ rewriteFrom: 'mailbox', replyToOriginalFrom: true, rewriteFromFor: {} });
  });

  it('takes the envelope mode, a per-mapping rewriteFrom, and names bad values', () => {
    const c = buildConfig({ delivery: { headerOnlyRecipients: 'envelope' }, limits: { maxHeaderSize: '64KB' }, mailboxes: { rewriteFrom: 'never', map: { '@printer.local': { mailbox: 'scans@contoso.example', rewriteFrom: 'mailbox' } } } }, creds);
    expect(c.delivery.headerOnlyRecipients).toBe('envelope');
    expect(c.limits.maxHeaderSize).toBe(64 * 1024);
    expect(c.mailboxes.rewriteFrom).toBe('never');
    expect(c.mailboxes.rewriteFromFor).toEqual({ '@printer.local': 'mailbox' });
    expect(configError({ mailboxes: { rewriteFrom: 'always' } })).toMatch(/^mailboxes\.rewriteFrom: must be one of mailbox, never/);
    expect(configError({ limits: { maxHeaderSize: '2MB' } })).toMatch(/^limits\.maxHeaderSize: must be between/);
    expect(configError({ delivery: { headerOnlyRecipients: 'drop' } })).toMatch(/^delivery\.headerOnlyRecipients: must be one of deliver, reject, envelope/);
  });
});

describe('environment over file', () => {
  it('overrides a key the file also sets, without calling the file key unknown', () => {
    const c = buildConfig(
      { hostname: 'from-file.example', graph: { tenantId: 'file-tenant', graphUrl: 'https://graph.file.example' }, log: { level: 'warn' }, delivery: { mode: 'graph', captureDirectory: '/file/capture' }, spool: { directory: '/file/spool' } },
      { ...creds, RELAY_HOSTNAME: 'from-env.example', RELAY_GRAPH_URL: 'https://graph.env.example', RELAY_LOG_LEVEL: 'debug', RELAY_DELIVERY: 'capture', RELAY_SPOOL_DIR: '/env/spool', RELAY_CAPTURE_DIR: '/env/capture' },
    );
    expect(c.spool.directory).toBe('/env/spool');
    expect(c.delivery.captureDirectory).toBe('/env/capture');
    expect(c.hostname).toBe('from-env.example');
    expect(c.graph.tenantId).toBe('6f1d3c2b-8a4e-4b7f-9c5d-2e0a1b3c4d5e');
    expect(c.graph.graphUrl).toBe('https://graph.env.example');
    expect(c.log.level).toBe('debug');
    expect(c.delivery.mode).toBe('capture');
  });

  it('still validates the file key and the environment value', () => {
    expect(configError({ log: { level: 'loud' } }, { ...creds, RELAY_LOG_LEVEL: 'debug' })).toMatch(/^log\.level: must be one of/);
    expect(configError({}, { ...creds, RELAY_LOG_LEVEL: 'loud' })).toMatch(/^RELAY_LOG_LEVEL: must be one of fatal, error/);
  });
});

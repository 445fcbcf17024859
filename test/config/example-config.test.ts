/** The shipped configuration files are valid: what the README tells people to copy must load. */

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';

const creds = { AZURE_TENANT_ID: '6f1d3c2b-8a4e-4b7f-9c5d-2e0a1b3c4d5e', AZURE_CLIENT_ID: '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f', AZURE_CLIENT_SECRET: 's' };
const load = (f: string) => buildConfig(parse(readFileSync(path.join(import.meta.dirname, '../../config', f), 'utf8')), creds);

describe('shipped configuration files', () => {
  it('relay.example.yaml documents every setting and loads', () => {
    const c = load('relay.example.yaml');
    expect(c.listeners[0]!.allowedNetworks).toContain('10.20.30.0/24');
    expect(c.mailboxes.map['@printers.local']).toBe('printers@contoso.example');
    expect(c.mailboxes.sentItems['@printers.local']).toBe('discard');
    expect(c.delivery.retry.scheduleMs[0]).toBe(30_000);
    expect(c.delivery.unknownOutcome).toEqual({ lookups: 6, intervalMs: 10_000 });
    // A single relay unless fleet.redisUrl is set.
    expect(c.fleet).toMatchObject({ redisUrl: null, replicas: 1, leaseMs: 10_000, keyPrefix: 'smtp-graph-relay:' });
  });

  it('relay.example.yaml shows two tenants: the default account and fabrikam, chosen by domain, listener and mapping', () => {
    const c = load('relay.example.yaml');
    expect(c.defaultAccount).toBe('default');
    expect(c.graph.domains).toEqual(['contoso.example']);
    expect(c.accounts.map((a) => [a.name, a.tenantId, a.domains])).toEqual([['fabrikam', '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d', ['fabrikam.example']]]);
    expect(c.accounts[0]!.clientCertificatePath).toBe('/etc/relay/fabrikam-app.pem');
    expect(c.listeners.find((l) => l.name === 'fabrikam-site')?.account).toBe('fabrikam');
    expect(c.mailboxes.accountFor['@fabrikam-printers.local']).toBe('fabrikam');
    expect(c.graph.proxy).toBeNull();
  });

  it('relay.capture.yaml (the quick start) runs in capture mode', () => {
    expect(load('relay.capture.yaml').delivery.mode).toBe('capture');
  });
});

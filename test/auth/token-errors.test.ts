/** Token failures say where and why: the host, the step (tenant discovery, token request) and the cause, or Entra ID's refusal with its fix. */

import { readFileSync } from 'node:fs';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MsalTokenProvider } from '../../src/auth/token-provider.js';
import { type GraphConfig } from '../../src/config/config.js';
import { buildConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { startEmulator, type Emulator } from '../emulator/emulator.js';
import { TokenError } from '../../src/errors.js';

let emu: Emulator;
beforeAll(async () => {
  emu = await startEmulator();
});
afterAll(async () => {
  await emu.close();
});

function graph(over: Record<string, unknown>): GraphConfig {
  return buildConfig({ graph: { connectTimeout: '2s', headersTimeout: '5s', ...over } }, { RELAY_FALLBACK_MAILBOX: 'relay@contoso.example' }).graph;
}

async function failure(cfg: GraphConfig): Promise<TokenError> {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('info', { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  // The relay's own network path to Entra ID, trusting the emulator's test CA.
  const agent = new Agent({ connect: { ca: readFileSync(emu.caCertPath), timeout: 2000 } });
  const err = await new MsalTokenProvider(cfg, log, {}, {}, { dispatcher: agent, direct: agent }).getToken().then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TokenError);
  const line = lines.find((l) => l['event'] === 'token-failed');
  expect(line?.['msg']).toBe(`could not get a Graph token: ${(err as TokenError).message}`);
  return err as TokenError;
}

describe('token failures name the host, the step and the cause', () => {
  it('a wrong client secret: Entra ID refuses, with the AADSTS code and what to change', async () => {
    const err = await failure(graph({ graphUrl: emu.graphUrl, authorityHost: emu.authorityHost, tenantId: emu.tenantId, clientId: emu.clientId, clientSecret: 'not-the-secret' }));
    expect(err.message).toMatch(new RegExp(`^Entra ID \\(127\\.0\\.0\\.1:${emu.port}\\) refused the token request: invalid_client: AADSTS7000215`));
    expect(err.errorCode).toBe('AADSTS7000215');
    expect(err.hint).toContain("use the secret's Value");
  });

  it('nothing listening: the step, the host and "connection refused"', async () => {
    const err = await failure(graph({ graphUrl: 'https://127.0.0.1:1', authorityHost: 'https://127.0.0.1:1', tenantId: emu.tenantId, clientId: emu.clientId, clientSecret: 's' }));
    expect(err.message).toMatch(/^tenant discovery GET 127\.0\.0\.1:1\/.*: connection refused \(ECONNREFUSED\)$/);
  });

  it('a name that does not resolve: DNS', async () => {
    const err = await failure(graph({ graphUrl: 'https://login.nonexistent.invalid', authorityHost: 'https://login.nonexistent.invalid', tenantId: emu.tenantId, clientId: emu.clientId, clientSecret: 's' }));
    expect(err.message).toMatch(/^tenant discovery GET login\.nonexistent\.invalid\/.*: DNS: (the name does not resolve \(ENOTFOUND\)|no answer from the resolver \(EAI_AGAIN\))$/);
  });
});

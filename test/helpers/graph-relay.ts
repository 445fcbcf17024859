/** Starts the emulator and the relay wired to it, the way most integration tests need them. */

import { startEmulator, type Emulator, type EmulatorOptions } from '../emulator/emulator.js';
import { startRelay, type RelayProcess, type StartOptions } from './relay-process.js';

export function graphSection(emu: Emulator): Record<string, unknown> {
  return { graphUrl: emu.graphUrl, authorityHost: emu.authorityHost, tenantId: emu.tenantId, clientId: emu.clientId, clientSecret: emu.clientSecret };
}

/** A relay config that delivers to the emulator, with quick retries so tests need not wait minutes. */
export function relayConfig(emu: Emulator, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { delivery, mailboxes, graph, ...rest } = extra as { delivery?: Record<string, unknown>; mailboxes?: Record<string, unknown>; graph?: Record<string, unknown> };
  return {
    hostname: 'relay.test',
    graph: { ...graphSection(emu), ...graph },
    mailboxes: { senderDomains: ['contoso.example'], ...mailboxes },
    delivery: { mode: 'graph', retry: { schedule: ['200ms', '400ms'], throttleBackoffBase: '200ms' }, ...delivery },
    log: { level: 'debug' },
    ...rest,
  };
}

export function startGraphRelay(emu: Emulator, extra: Record<string, unknown> = {}, opts: Partial<StartOptions> = {}): Promise<RelayProcess> {
  return startRelay({ config: relayConfig(emu, extra), ...opts, env: { NODE_EXTRA_CA_CERTS: emu.caCertPath, ...opts.env } });
}

export async function withEmulator(opts: EmulatorOptions = {}): Promise<Emulator> {
  return startEmulator(opts);
}

/** An RFC 5322 message with CRLF line ends. */
export function message(headers: Record<string, string>, body: string | Buffer): Buffer {
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'utf8'), Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8')]);
}

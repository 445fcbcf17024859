/** Starts the emulator and the relay wired to it, the way most integration tests need them. */

import { afterAll, afterEach, beforeAll } from 'vitest';
import { startEmulator, type Emulator, type EmulatorOptions } from '../emulator/emulator.js';
import { startInProcess } from './relay-in-process.js';
import { startRelay, type RelayProcess, type StartOptions } from './relay-process.js';

/** The emulator's CA is trusted through graph.caFile, so the same config works in-process and as a child process. */
export function graphSection(emu: Emulator): Record<string, unknown> {
  return { graphUrl: emu.graphUrl, authorityHost: emu.authorityHost, tenantId: emu.tenantId, clientId: emu.clientId, clientSecret: emu.clientSecret, caFile: emu.caCertPath };
}

/** A relay config that delivers to the emulator, with quick retries so tests need not wait minutes. */
export function relayConfig(emu: Emulator, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { delivery, mailboxes, graph, ...rest } = extra as { delivery?: Record<string, unknown>; mailboxes?: Record<string, unknown>; graph?: Record<string, unknown> };
  return {
    hostname: 'relay.test',
    graph: { ...graphSection(emu), ...graph },
    mailboxes: { senderDomains: ['contoso.example'], ...mailboxes },
    // Unknown outcomes are looked up in the emulator's Sent Items 3 times 300 ms apart (not 6 times 10 s).
    delivery: { mode: 'graph', retry: { schedule: ['200ms', '400ms'], throttleBackoffBase: '200ms' }, unknownOutcome: { lookups: 3, interval: '300ms' }, ...delivery },
    log: { level: 'debug' },
    ...rest,
  };
}

/** A relay wired to the emulator: in the test's process, or the built binary with `{ process: true }`. */
export function startGraphRelay(emu: Emulator, extra: Record<string, unknown> = {}, opts: Partial<StartOptions> = {}): Promise<RelayProcess> {
  const start = { config: relayConfig(emu, extra), ...opts };
  return opts.process ? startRelay({ ...start, env: { NODE_EXTRA_CA_CERTS: emu.caCertPath, ...opts.env } }) : startInProcess(start);
}

/** An RFC 5322 message with CRLF line ends. */
export function message(headers: Record<string, string>, body: string | Buffer): Buffer {
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'utf8'), Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8')]);
}

export interface Testbed {
  /** The emulator of this test file (started in beforeAll). */
  readonly emu: Emulator;
  /** Starts a relay wired to the emulator; it is killed after the test, and the emulator reset. */
  relay(extra?: Record<string, unknown>, opts?: Partial<StartOptions>): Promise<RelayProcess>;
}

/**
 * One emulator per test file and relays per test, with the hooks that clean up after each. Relays run
 * in-process unless `start.process` (for the whole file) or a test's own `{ process: true }` asks for the binary.
 */
export function useTestbed(emulatorOptions: EmulatorOptions = {}, defaults: Record<string, unknown> = {}, start: Partial<StartOptions> = {}): Testbed {
  let emu: Emulator | undefined;
  const relays: RelayProcess[] = [];
  beforeAll(async () => {
    emu = await startEmulator(emulatorOptions);
  });
  afterAll(async () => {
    await emu?.close();
  });
  afterEach(async () => {
    const done = relays.splice(0);
    await Promise.all(done.map((r) => r.kill()));
    emu?.reset();
    // Every log line is an event an administrator can filter on.
    for (const r of done) {
      const bare = r.logs.filter((l) => !l.raw && typeof l.event !== 'string');
      if (bare.length) throw new Error(`log lines without an event field:\n${bare.map((l) => JSON.stringify(l)).join('\n')}`);
    }
  });
  return {
    get emu(): Emulator {
      if (!emu) throw new Error('the emulator starts in beforeAll');
      return emu;
    },
    async relay(extra = {}, opts = {}) {
      const r = await startGraphRelay(this.emu, { ...defaults, ...extra }, { ...start, ...opts });
      relays.push(r);
      return r;
    },
  };
}

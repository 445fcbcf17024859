/** Standalone emulator: makes a PKI, starts, prints one JSON line of connection details, runs until SIGTERM/SIGINT. */
import type { RunnerInfo } from './types.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startEmulator } from './emulator.js';
import { makeTestPki } from './pki.js';

const USAGE = `usage: tsx test/emulator/main.ts [--port 0] [--dir DIR] [--latency-ms N] [--jitter-ms N]
  [--mailbox-concurrency N] [--random-fault-rate 0..1] [--max-body-bytes N] [--token-lifetime-sec N] [--sent-items-delay-ms N]
  [--mailboxes a@x,b@x] [--tenant-id GUID] [--client-id GUID] [--client-secret S] [--accept-assertion TOKEN]...`;

function number(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got '${value}'`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      dir: { type: 'string' },
      'latency-ms': { type: 'string' },
      'jitter-ms': { type: 'string' },
      'mailbox-concurrency': { type: 'string' },
      'random-fault-rate': { type: 'string' },
      'max-body-bytes': { type: 'string' },
      'token-lifetime-sec': { type: 'string' },
      'sent-items-delay-ms': { type: 'string' },
      mailboxes: { type: 'string' },
      'tenant-id': { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      'accept-assertion': { type: 'string', multiple: true },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'graph-emulator-'));
  const pki = makeTestPki(dir);
  const optional = <K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> =>
    (value === undefined ? {} : { [key]: value }) as Partial<Record<K, V>>;
  const emu = await startEmulator({
    pki,
    ...optional('port', number('port', values.port)),
    ...optional('latencyMs', number('latency-ms', values['latency-ms'])),
    ...optional('jitterMs', number('jitter-ms', values['jitter-ms'])),
    ...optional('mailboxConcurrency', number('mailbox-concurrency', values['mailbox-concurrency'])),
    ...optional('randomFaultRate', number('random-fault-rate', values['random-fault-rate'])),
    ...optional('maxBodyBytes', number('max-body-bytes', values['max-body-bytes'])),
    ...optional('tokenLifetimeSec', number('token-lifetime-sec', values['token-lifetime-sec'])),
    ...optional('sentItemsDelayMs', number('sent-items-delay-ms', values['sent-items-delay-ms'])),
    ...optional('mailboxes', values.mailboxes?.split(',').map((s) => s.trim()).filter((s) => s.length > 0)),
    ...optional('tenantId', values['tenant-id']),
    ...optional('clientId', values['client-id']),
    ...optional('clientSecret', values['client-secret']),
    ...optional('acceptedAssertions', values['accept-assertion']),
  });
  const info: RunnerInfo = {
    graphUrl: emu.graphUrl,
    authorityHost: emu.authorityHost,
    authority: emu.authority,
    tenantId: emu.tenantId,
    clientId: emu.clientId,
    clientSecret: emu.clientSecret,
    caCertPath: emu.caCertPath,
    clientPemPath: pki.clientPemPath,
    clientThumbprintSha256: pki.clientThumbprintSha256,
    clientThumbprintSha1: pki.clientThumbprintSha1,
    controlUrl: emu.controlUrl,
  };
  process.stdout.write(`${JSON.stringify(info)}\n`);

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    emu.close().then(() => process.exit(0), (err: unknown) => {
      process.stderr.write(`graph emulator: close failed: ${String(err)}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`graph emulator: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
  process.exit(2);
});

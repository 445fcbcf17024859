/**
 * The Graph + Entra emulator (test/emulator) in its own process, so that its TLS and base64 work does not
 * share an event loop with the benchmark's SMTP client. Prints one JSON line (graph details) when ready,
 * then answers IPC requests {id, cmd, arg} from bench/lib.ts with {id, ok, value | error}.
 * usage: node --import tsx bench/emulator-child.ts '{"latencyMs":200,"jitterMs":20,"mailboxConcurrency":4}'
 */

import { startEmulator, type SentRecord } from '../test/emulator/emulator.js';

const opts = JSON.parse(process.argv[2] ?? '{}') as { latencyMs?: number; jitterMs?: number; mailboxConcurrency?: number; otherResources?: string[] };
const emu = await startEmulator(opts);

/** The emulator keeps every message it accepts; a benchmark needs only the times, so bodies are dropped. */
let count = 0;
let first = 0;
let last = 0;
/** When the first Graph request since the last reset arrived (before its latency), as Date.now(). */
let firstRequest = 0;
// 'request' comes when a request is answered; its entry's `at` is when it arrived.
emu.on('request', (entry: { at: Date }) => {
  const at = entry.at.getTime();
  if (!firstRequest || at < firstRequest) firstRequest = at;
});
const waiters: { n: number; resolve: () => void }[] = [];
const ids = new Map<string, number>();
emu.on('sent', (r: SentRecord) => {
  count++;
  const at = r.at.getTime();
  first ||= at;
  last = at;
  // Each Message-ID's count: a lost or doubled message shows (bench/fleet.ts).
  const id = /^Message-ID:\s*(\S+)/im.exec(r.mime?.toString('latin1').split('\r\n\r\n')[0] ?? '')?.[1];
  if (id) ids.set(id, (ids.get(id) ?? 0) + 1);
  delete r.mime;
  delete r.json;
  for (const w of [...waiters]) {
    if (count >= w.n) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  }
});
const summary = (): { count: number; first: number; last: number; firstRequest: number } => ({ count, first, last, firstRequest });

type Handler = (arg: unknown) => unknown;
const handlers: Record<string, Handler> = {
  stats: () => emu.stats(),
  setDown: (mode) => emu.setDown(mode as '503' | 'reset' | false),
  setFaults: (f) => emu.setFaults(f as Record<string, number>),
  setUnreachable: (on) => emu.setUnreachable(on as boolean),
  reset: () => {
    emu.reset();
    count = first = last = firstRequest = 0;
    ids.clear();
  },
  /** Distinct Message-IDs sent since the last reset, and how many were sent more than once. */
  messageIds: () => ({ unique: ids.size, duplicated: [...ids.values()].filter((n) => n > 1).length }),
  sent: () => summary(),
  waitForSent: async (arg) => {
    const { n, timeoutMs } = arg as { n: number; timeoutMs: number };
    if (count < n) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`waitForSent(${n}): only ${count} after ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ n, resolve: () => (clearTimeout(timer), resolve()) });
      });
    }
    return summary();
  },
};

process.on('message', (m: { id: number; cmd: string; arg?: unknown }) => {
  Promise.resolve()
    .then(() => {
      const h = handlers[m.cmd];
      if (!h) throw new Error(`unknown command ${m.cmd}`);
      return h(m.arg);
    })
    .then(
      (value) => process.send?.({ id: m.id, ok: true, value: value ?? null }),
      (err: unknown) => process.send?.({ id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
    );
});

const stop = (): void => {
  emu.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', stop);
process.on('disconnect', stop);
process.stdout.write(
  `${JSON.stringify({ graphUrl: emu.graphUrl, authorityHost: emu.authorityHost, tenantId: emu.tenantId, clientId: emu.clientId, clientSecret: emu.clientSecret, caCertPath: emu.caCertPath })}\n`,
);

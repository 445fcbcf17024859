/**
 * A real forward proxy for the tests: Debian's tinyproxy (installed by .ci/run), started on a free port.
 * It connects out from 127.0.0.2 (Bind), so a server can tell a request that came through it (peer
 * 127.0.0.2) from one that came directly (peer 127.0.0.1).
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from './free-port.js';

/** Where requests relayed by the proxy come from. */
export const PROXY_PEER = '127.0.0.2';

export interface Tinyproxy {
  port: number;
  /** http://127.0.0.1:port, without credentials. */
  url: string;
  /** Every line tinyproxy logged (LogLevel Info: each CONNECT, each refusal). */
  log: string[];
  /** The CONNECT requests it received ("CONNECT 127.0.0.1:4567 HTTP/1.1"). */
  connects(): string[];
  stop(): Promise<void>;
}


/** Starts tinyproxy; with `auth`, every request (CONNECT too) needs Basic credentials, else 407. */
export async function startTinyproxy(auth?: { user: string; password: string }): Promise<Tinyproxy> {
  if (spawnSync('tinyproxy', ['-v']).error) throw new Error('tinyproxy is not installed: apt-get install tinyproxy (.ci/run installs it)');
  // A port taken between freePort() and tinyproxy's bind: try another.
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(await freePort(), auth);
    } catch (err) {
      if (attempt >= 3 || !/listening sockets/.test((err as Error).message)) throw err;
    }
  }
}

async function launch(port: number, auth: { user: string; password: string } | undefined): Promise<Tinyproxy> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tinyproxy-'));
  const conf = path.join(dir, 'tinyproxy.conf');
  writeFileSync(
    conf,
    [`Port ${port}`, 'Listen 127.0.0.1', `Bind ${PROXY_PEER}`, 'Timeout 60', 'LogLevel Info', 'MaxClients 200', 'Allow 127.0.0.1', 'DisableViaHeader Yes', ...(auth ? [`BasicAuth ${auth.user} ${auth.password}`] : []), ''].join('\n'),
  );
  const child: ChildProcess = spawn('tinyproxy', ['-d', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const onLine = (line: string): void => {
      log.push(line);
      if (line.includes('Accepting connections')) resolve();
      if (line.includes('Could not create listening sockets')) reject(new Error(`tinyproxy: ${line}`));
    };
    for (const s of [child.stdout!, child.stderr!]) createInterface({ input: s }).on('line', onLine);
    void exited.then(() => reject(new Error(`tinyproxy exited before listening:\n${log.join('\n')}`)));
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    log,
    connects: () => log.map((l) => /Request \(file descriptor \d+\): (CONNECT \S+ HTTP\/1\.1)/.exec(l)?.[1]).filter((x): x is string => x !== undefined),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

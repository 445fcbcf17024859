/** A real redis-server (Debian's package) for a test: a free port, a folder of its own, no persistence. */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from './free-port.js';

export interface RedisServer {
  port: number;
  url: string;
  child: ChildProcess;
  /** SIGKILL, and resolves once it is gone: the relays see their connections drop. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: nothing was saved). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export function redisServerPath(): string {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim();
  if (!found) throw new Error('redis-server is not installed: the fleet tests need a real Redis (apt-get install redis-server)');
  return found;
}


export async function startRedis(): Promise<RedisServer> {
  const bin = redisServerPath();
  const dir = mkdtempSync(path.join(tmpdir(), 'relay-redis-'));
  const port = await freePort();
  let child!: ChildProcess;
  const launch = async (): Promise<void> => {
    child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: string[] = [];
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (l) => {
        out.push(l);
        if (/Ready to accept connections/.test(l)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready:\n${out.join('\n')}`)));
    });
  };
  await launch();
  const gone = (): Promise<void> =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get child() {
      return child;
    },
    async kill() {
      const done = gone();
      child.kill('SIGKILL');
      await done;
    },
    restart: launch,
    async stop() {
      const done = gone();
      child.kill('SIGKILL');
      await done;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

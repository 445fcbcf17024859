/** The queue tools' channel to a running relay: request files in spool/control/, like Postfix's public/ FIFOs. */

import { randomUUID } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { constants as fsc } from 'node:fs';

export type ControlRequest =
  | { op: 'retry'; ids?: string[]; mailbox?: string; all?: boolean }
  | { op: 'delete'; ids: string[]; dead?: boolean }
  | { op: 'requeue'; ids?: string[]; all?: boolean }
  /** Messages a queue move staged in this spool's tmp/ (spool/move.ts): into the queue, and scheduled. */
  | { op: 'adopt'; ids: string[] };

export interface ControlResponse {
  ok: boolean;
  count: number;
  message: string;
  /** Ids that could not be handled, with the reason. */
  skipped?: Record<string, string>;
  /** adopt: the ids now in the queue. */
  ids?: string[];
}

export type ControlHandler = (req: ControlRequest) => Promise<ControlResponse>;

const REQ = '.req.json';
const RES = '.res.json';

export function controlDir(spoolDir: string): string {
  return path.join(spoolDir, 'control');
}

/** Relay side: handles each request file once, one at a time, and answers next to it. */
export class ControlServer {
  private watcher: FSWatcher | null = null;
  private busy = false;
  private again = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly dir: string,
    private readonly handler: ControlHandler,
    private readonly onError: (err: unknown) => void,
  ) {}

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
    this.watcher = watch(this.dir, () => void this.scan());
    this.watcher.on('error', this.onError);
    // fs.watch may miss events on some filesystems (network and overlay mounts); a slow scan backs it up.
    this.timer = setInterval(() => void this.scan(), 2000);
    this.timer.unref();
    await this.scan();
  }

  stop(): void {
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
  }

  private async scan(): Promise<void> {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      do {
        this.again = false;
        for (const f of (await readdir(this.dir)).filter((x) => x.endsWith(REQ)).sort()) await this.handle(f);
      } while (this.again);
    } catch (err) {
      this.onError(err);
    } finally {
      this.busy = false;
    }
  }

  private async handle(file: string): Promise<void> {
    const reqPath = path.join(this.dir, file);
    let res: ControlResponse;
    try {
      const req = JSON.parse(await readFile(reqPath, 'utf8')) as ControlRequest;
      res = await this.handler(req);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // taken already
      res = { ok: false, count: 0, message: (err as Error).message };
    }
    const resPath = reqPath.slice(0, -REQ.length) + RES;
    await writeFile(`${resPath}.tmp`, JSON.stringify(res));
    await rename(`${resPath}.tmp`, resPath);
    await unlink(reqPath).catch(() => undefined);
  }
}

/** Tool side: drops a request and waits for the relay's answer. */
export async function sendControl(dir: string, req: ControlRequest, timeoutMs = 15_000): Promise<ControlResponse> {
  await mkdir(dir, { recursive: true, mode: 0o750 });
  const id = `${Date.now()}-${randomUUID()}`;
  const reqPath = path.join(dir, id + REQ);
  const resPath = path.join(dir, id + RES);
  await writeFile(`${reqPath}.tmp`, JSON.stringify(req));
  await rename(`${reqPath}.tmp`, reqPath);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = JSON.parse(await readFile(resPath, 'utf8')) as ControlResponse;
      await unlink(resPath).catch(() => undefined);
      return res;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (Date.now() > deadline) {
      await unlink(reqPath).catch(() => undefined);
      throw new Error(`the relay did not answer within ${timeoutMs / 1000} s (is it running and watching ${dir}?)`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One relay per spool: a pid lock file, taken over when its process is gone. */
export class SpoolLock {
  constructor(readonly file: string) {}

  /** The pid of a live relay holding the lock, or null. */
  async holder(): Promise<number | null> {
    try {
      const pid = Number((await readFile(this.file, 'utf8')).trim());
      if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return null;
      process.kill(pid, 0);
      return pid;
    } catch (err) {
      // EPERM: the process exists but belongs to someone else; it still holds the spool.
      if ((err as NodeJS.ErrnoException).code === 'EPERM') return Number((await readFile(this.file, 'utf8')).trim());
      return null;
    }
  }

  async acquire(): Promise<void> {
    const other = await this.holder();
    if (other !== null) throw new Error(`the spool is in use by another relay (pid ${other}, lock ${this.file})`);
    const fh = await open(`${this.file}.${process.pid}`, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC, 0o640);
    await fh.writeFile(`${process.pid}\n`);
    await fh.close();
    await rename(`${this.file}.${process.pid}`, this.file);
  }

  async release(): Promise<void> {
    const pid = Number((await readFile(this.file, 'utf8').catch(() => '')).trim());
    if (pid === process.pid) await unlink(this.file).catch(() => undefined);
  }
}

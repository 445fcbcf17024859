/** The spool's file-system helpers: a directory fsync shared by the callers of one turn, a synced write, existence. */

import { constants as fsc, fsync } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';

const fsyncFd = promisify(fsync);

/**
 * fsync of a directory. Callers of one event-loop turn share one fsync, started at the end of that turn
 * (setImmediate): each caller's rename is done before it asks, so the shared fsync covers it. Waiting for
 * a running fsync to end before starting the next one (a classic group commit) saved little here and
 * added up to one fsync of latency to every 250.
 */
export class DirSyncer {
  private next: Promise<void> | null = null;
  constructor(private readonly handle: FileHandle) {}

  sync(): Promise<void> {
    this.next ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        this.next = null;
        fsyncFd(this.handle.fd).then(resolve, reject);
      });
    });
    return this.next;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

export function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );
}

export async function writeSynced(file: string, text: string): Promise<void> {
  const fh = await open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC, 0o640);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

/** Readiness: can this relay take mail and deliver it? Spool writable, Graph token at hand, not stopping. */

import { randomBytes } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { TokenProvider } from '../auth/token-provider.js';

export type Readiness = { ready: true; checks: Record<string, string> } | { ready: false; reason: string; checks: Record<string, string> };

export interface ReadinessDeps {
  /** A directory inside the spool's file system where a probe file may be written (the spool's tmp/). */
  probeDir: string;
  /** null in capture mode: no Graph, no token needed. */
  tokens: TokenProvider | null;
  /** Capture mode: where messages are written instead (it must stay writable, as the spool must). */
  captureDir?: string | null;
  stopping(): boolean;
  now?: () => number;
}

/** Entra tokens live 60-90 minutes and msal renews them 5 minutes early: one younger than this proves auth works. */
const TOKEN_RECENT_MS = 55 * 60_000;
/** A probe must answer well inside the kubelet's timeout even when Entra ID hangs. */
const TOKEN_CHECK_TIMEOUT_MS = 5_000;

export class ReadinessCheck {
  private tokenCheck: Promise<string | null> | null = null;
  constructor(private readonly deps: ReadinessDeps) {}

  async check(): Promise<Readiness> {
    const checks: Record<string, string> = {};
    if (this.deps.stopping()) return { ready: false, reason: 'shutting down', checks: { shutdown: 'in progress' } };
    const spool = await writable(this.deps.probeDir);
    checks.spool = spool ?? 'ok';
    if (spool) return { ready: false, reason: `spool not writable: ${spool}`, checks };
    if (this.deps.captureDir) {
      const capture = await writable(this.deps.captureDir);
      checks.capture = capture ?? 'ok';
      if (capture) return { ready: false, reason: `capture folder ${this.deps.captureDir} not writable: ${capture}`, checks };
    }
    const token = await this.token();
    checks.token = token ?? (this.deps.tokens ? 'ok' : 'not needed (capture mode)');
    if (token) return { ready: false, reason: `no Graph token: ${token}`, checks };
    return { ready: true, checks };
  }

  /** null when a token was obtained recently or can be obtained now; concurrent probes share one attempt. */
  private async token(): Promise<string | null> {
    const tokens = this.deps.tokens;
    if (!tokens) return null;
    const now = (this.deps.now ?? Date.now)();
    if (tokens.lastSuccessAt !== null && now - tokens.lastSuccessAt < TOKEN_RECENT_MS) return null;
    this.tokenCheck ??= this.tryToken(tokens).finally(() => (this.tokenCheck = null));
    return this.tokenCheck;
  }

  private async tryToken(tokens: TokenProvider): Promise<string | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`no answer within ${TOKEN_CHECK_TIMEOUT_MS} ms`), TOKEN_CHECK_TIMEOUT_MS);
      timer.unref();
    });
    try {
      return await Promise.race([
        tokens.getToken().then(
          () => null,
          (err: unknown) => (err as Error).message,
        ),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A real write, not access(W_OK): a full disk or a read-only remount only shows when writing. Null when it worked. */
export async function writable(dir: string): Promise<string | null> {
  const file = path.join(dir, `.readyz-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const fh = await open(file, 'wx', 0o600);
    try {
      await fh.write('ok');
    } finally {
      await fh.close();
    }
    await unlink(file);
    return null;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
}

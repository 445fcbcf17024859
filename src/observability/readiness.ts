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
  /** Graph mode with named accounts: each one's tokens (`tokens` is then not used). */
  accounts?: { name: string; tokens: TokenProvider }[];
  /** Capture mode: where messages are written instead (it must stay writable, as the spool must). */
  captureDir?: string | null;
  stopping(): boolean;
  now?: () => number;
  /** A replica of a fleet: its name and mode, shown among the checks (Redis never makes a relay unready). */
  fleet?: () => string;
}

/** Entra tokens live 60-90 minutes and msal renews them 5 minutes early: one younger than this proves auth works. */
const TOKEN_RECENT_MS = 55 * 60_000;
/** A probe must answer well inside the kubelet's timeout even when Entra ID hangs. */
const TOKEN_CHECK_TIMEOUT_MS = 5_000;

export class ReadinessCheck {
  private readonly tokenChecks = new Map<TokenProvider, Promise<string | null>>();
  private readonly accounts: { name: string; tokens: TokenProvider }[];

  constructor(private readonly deps: ReadinessDeps) {
    this.accounts = deps.accounts?.length ? deps.accounts : deps.tokens ? [{ name: 'default', tokens: deps.tokens }] : [];
  }

  /**
   * `account`: that account's own readiness (/readyz?account=NAME). Without it, with several accounts, the
   * relay is ready while any account has a token: one tenant's expired secret must not stop another's mail
   * (the failing ones are listed, and their mail waits in the spool).
   */
  async check(account?: string): Promise<Readiness> {
    const checks: Record<string, string> = {};
    if (this.deps.stopping()) return { ready: false, reason: 'shutting down', checks: { shutdown: 'in progress' } };
    if (this.deps.fleet) checks.fleet = this.deps.fleet();
    const spool = await writable(this.deps.probeDir);
    checks.spool = spool ?? 'ok';
    if (spool) return { ready: false, reason: `spool not writable: ${spool}`, checks };
    if (this.deps.captureDir) {
      const capture = await writable(this.deps.captureDir);
      checks.capture = capture ?? 'ok';
      if (capture) return { ready: false, reason: `capture folder ${this.deps.captureDir} not writable: ${capture}`, checks };
    }
    const accounts = account === undefined ? this.accounts : this.accounts.filter((a) => a.name === account);
    if (account !== undefined && accounts.length === 0) return { ready: false, reason: `no Graph account "${account}"`, checks };
    if (accounts.length === 0) {
      checks.token = 'not needed (capture mode)';
      return { ready: true, checks };
    }
    const problems = await Promise.all(accounts.map((a) => this.token(a.tokens)));
    const one = this.accounts.length === 1;
    accounts.forEach((a, i) => (checks[one ? 'token' : `token:${a.name}`] = problems[i] ?? 'ok'));
    if (problems.some((p) => p === null)) return { ready: true, checks };
    const reason = accounts.length === 1 ? `no Graph token: ${problems[0]}` : `no Graph account has a token: ${accounts.map((a, i) => `${a.name}: ${problems[i]}`).join('; ')}`;
    return { ready: false, reason, checks };
  }

  /** null when a token was obtained recently or can be obtained now; concurrent probes share one attempt. */
  private async token(tokens: TokenProvider): Promise<string | null> {
    const now = (this.deps.now ?? Date.now)();
    if (tokens.lastSuccessAt !== null && now - tokens.lastSuccessAt < TOKEN_RECENT_MS) return null;
    let check = this.tokenChecks.get(tokens);
    if (!check) {
      check = this.tryToken(tokens).finally(() => this.tokenChecks.delete(tokens));
      this.tokenChecks.set(tokens, check);
    }
    return check;
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

/** SMTP AUTH: scrypt hashes, a lockout counted as attempts start, and replies that never tell a user name from a password. */

import type { SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerSession } from 'smtp-server';
import { DUMMY_HASH, parsePasswordHash, verifyPassword } from '../config/password-hash.js';
import { SmtpReply } from '../errors.js';
import { authNeedsTls, type ListenerContext } from './session.js';

type AuthCallback = (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void;

export function authenticate(ctx: ListenerContext, auth: SMTPServerAuthentication, session: SMTPServerSession, cb: AuthCallback): void {
  const { cfg, shared, log, listener } = ctx;
  const client = session.remoteAddress;
  if (!session.secure && !listener.allowInsecureAuth) return cb(ctx.reject(session, 'auth-insecure', new SmtpReply(538, authNeedsTls(ctx))));
  // Counted now, not when the verdict comes back: parallel attempts get no more tries than sequential ones.
  const attempt = shared.auth.start(client);
  if (!attempt.ok) {
    const text =
      attempt.reason === 'locked'
        ? `4.7.0 Too many failed logins from [${client}]; try again in ${Math.ceil(attempt.ms / 1000)} s (limits.authLockout)`
        : `4.7.0 Too many failed or unfinished logins from [${client}]: at most ${cfg.limits.authFailuresBeforeLockout} (limits.authFailuresBeforeLockout); try again later`;
    return cb(ctx.reject(session, 'auth-locked', new SmtpReply(454, text)));
  }
  const user = cfg.users.find((u) => u.username === auth.username) ?? null;
  // An unknown user costs the same scrypt as a wrong password, so timing does not reveal user names.
  verifyPassword(auth.password ?? '', user ? parsePasswordHash(user.passwordHash) : DUMMY_HASH).then(
    (match) => {
      if (match && user) {
        shared.auth.success(client);
        log.info({ event: 'auth', listener: listener.name, client, user: user.username, method: auth.method }, 'smtp authenticated');
        return cb(null, { user: user.username });
      }
      const f = shared.auth.failure(client);
      // The user name is logged (it helps find a misconfigured device); the password never is.
      log.warn({ event: 'auth-failed', listener: listener.name, client, user: String(auth.username ?? '').slice(0, 256), failures: f.failures, locked: f.locked }, 'smtp authentication failed');
      const reply = f.locked
        ? new SmtpReply(454, `4.7.0 Too many failed logins from [${client}]; locked out for ${Math.ceil(cfg.limits.authLockoutMs / 1000)} s (limits.authFailuresBeforeLockout)`)
        : new SmtpReply(535, '5.7.8 Authentication credentials invalid');
      ctx.events.rejected('auth', session, `${reply.responseCode} ${reply.message} (user ${String(auth.username ?? '').slice(0, 64)})`);
      setTimeout(() => cb(reply), f.delayMs).unref();
    },
    (err: unknown) => {
      shared.auth.release(client);
      log.error({ event: 'auth-error', err, client }, 'password check failed');
      cb(new SmtpReply(454, '4.7.0 Temporary authentication failure'));
    },
  );
}

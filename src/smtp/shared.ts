/** State the listeners of one relay share: connection counts, failed-login records and client-error log lines per client address. */

import type { RelayConfig } from '../config/config.js';
import { AuthGuard } from './auth-guard.js';
import { LogThrottle } from './client-errors.js';
import { ConnectionLimits } from './connection-limits.js';

export interface FrontDoorShared {
  connections: ConnectionLimits;
  auth: AuthGuard;
  /** Failed TLS handshakes and other client-caused errors: one log line per address per limits.clientErrorLogInterval. */
  clientErrors: LogThrottle;
}

// Keyed by the config object: every SmtpListener of one Relay gets the same counters without new wiring.
const byConfig = new WeakMap<RelayConfig, FrontDoorShared>();

export function frontDoorShared(cfg: RelayConfig): FrontDoorShared {
  let s = byConfig.get(cfg);
  if (!s) {
    s = {
      connections: new ConnectionLimits(cfg.limits.maxConnections, cfg.limits.maxConnectionsPerClient),
      auth: new AuthGuard({ failuresBeforeLockout: cfg.limits.authFailuresBeforeLockout, lockoutMs: cfg.limits.authLockoutMs, failureDelayMs: cfg.limits.authFailureDelayMs }),
      clientErrors: new LogThrottle(cfg.limits.clientErrorLogIntervalMs),
    };
    byConfig.set(cfg, s);
  }
  return s;
}

/** State the listeners of one relay share: connection counts and failed-login records per client address. */

import type { RelayConfig } from '../config/config.js';
import { AuthGuard } from './auth-guard.js';
import { ConnectionLimits } from './connection-limits.js';

export interface FrontDoorShared {
  connections: ConnectionLimits;
  auth: AuthGuard;
}

// Keyed by the config object: every SmtpListener of one Relay gets the same counters without new wiring.
const byConfig = new WeakMap<RelayConfig, FrontDoorShared>();

export function frontDoorShared(cfg: RelayConfig): FrontDoorShared {
  let s = byConfig.get(cfg);
  if (!s) {
    s = {
      connections: new ConnectionLimits(cfg.limits.maxConnections, cfg.limits.maxConnectionsPerClient),
      auth: new AuthGuard({ failuresBeforeLockout: cfg.limits.authFailuresBeforeLockout, lockoutMs: cfg.limits.authLockoutMs, failureDelayMs: cfg.limits.authFailureDelayMs }),
    };
    byConfig.set(cfg, s);
  }
  return s;
}

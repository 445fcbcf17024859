/** What a fleet's slots are made with, what they tell metrics and the admin listener, and the static share. */

import type { FleetConfig } from '../config/fleet.js';
import type { Logger } from '../observability/logger.js';

export type FleetMode = 'shared' | 'fallback';

/** What the fleet tells metrics: the mode it is in, the slots this replica holds. */
export interface FleetEvents {
  mode(mode: FleetMode, replica: string): void;
  held(account: string, mailbox: string, slots: number, replica: string): void;
}

export interface FleetSlotsOptions {
  cfg: FleetConfig;
  perMailboxConcurrency: number;
  /** Per mailbox, fleet-wide; 0 = no pacing. */
  messagesPerMinute: number;
  log: Logger;
  events?: FleetEvents;
  now?: () => number;
  /** How long a Redis command may take before the replica falls back (default COMMAND_TIMEOUT_MS). */
  commandTimeoutMs?: number;
  /** How often Redis is tried again while falling back (default PROBE_MS). */
  probeMs?: number;
}

/** One slot's answer may take no longer than this; then the replica falls back and answers from its share. */
export const COMMAND_TIMEOUT_MS = 1_000;
/** While falling back, Redis is tried this often. */
export const PROBE_MS = 1_000;
/** What the admin listener shows of the fleet. */
export interface FleetStatus {
  replica: string;
  mode: FleetMode;
  redis: string | null;
  replicas: number;
  /** The static share each replica keeps without Redis. */
  fallbackShare: number;
  fallbacks: number;
  /** This replica's slots, per (account, mailbox). */
  held: { account: string; mailbox: string; slots: number }[];
}

/** Without Redis each replica keeps limit ÷ replicas, rounded down, at least 1. */
export function fallbackShare(limit: number, replicas: number): number {
  return Math.max(1, Math.floor(limit / Math.max(1, replicas)));
}

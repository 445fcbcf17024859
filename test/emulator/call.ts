/** The context handed to each Graph operation handler, its reply type and the Graph error it may throw. */
import type { IncomingMessage } from 'node:http';
import type { EmulatorState, UploadSession } from './state.js';
import type { GraphOp } from './types.js';

export interface GraphCall {
  state: EmulatorState;
  req: IncomingMessage;
  op: GraphOp;
  /** As written in the request path, URL-decoded. */
  upn: string;
  draftId?: string;
  session?: UploadSession;
  body: Buffer;
  requestId: string;
  clientRequestId?: string;
  /** The tenant of the bearer token (none on upload URLs). */
  tenantId?: string;
}

export interface Reply {
  status: number;
  /** Omitted for empty bodies (202/204). */
  json?: unknown;
  headers?: Record<string, string>;
}

/** Thrown by handlers; rendered as the Graph error JSON shape with the request's ids. */
export class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function parseJsonObject(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new GraphError(400, 'RequestBodyRead', `Cannot read the request body: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new GraphError(400, 'RequestBodyRead', 'The request body must be a JSON object.');
  }
  return value as Record<string, unknown>;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

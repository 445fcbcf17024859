/** HTTPS control API under /_emulator/ so that other processes (benchmarks, container tests) can observe and steer. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody, sendJson } from './http.js';
import type { EmulatorState } from './state.js';
import type { DownMode, FaultSettings, ScriptStep, TokenStep } from './types.js';

export interface ControlActions {
  setFaults(faults: Partial<FaultSettings>): void;
  setDown(mode: DownMode): void;
  script(upn: string, steps: ScriptStep[]): void;
  scriptToken(steps: TokenStep[]): void;
  revokeTokens(): void;
  reset(): void;
}

class BadControlRequest extends Error {}

const FAULT_KEYS: (keyof FaultSettings)[] = ['latencyMs', 'jitterMs', 'randomFaultRate', 'mailboxConcurrency', 'sentItemsDelayMs', 'acceptThenResetRate', 'acceptThenHangRate'];

/** Only known numeric fields pass; anything else is a caller bug worth a 400. */
export function parseFaults(input: unknown): Partial<FaultSettings> {
  if (typeof input !== 'object' || input === null) throw new BadControlRequest('faults must be a JSON object');
  const out: Partial<FaultSettings> = {};
  for (const [key, value] of Object.entries(input)) {
    if (key === 'down') continue;
    if (!FAULT_KEYS.includes(key as keyof FaultSettings)) throw new BadControlRequest(`unknown fault option '${key}'`);
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new BadControlRequest(`${key} must be a number >= 0`);
    if (key.endsWith('Rate') && value > 1) throw new BadControlRequest(`${key} must be within 0..1`);
    out[key as keyof FaultSettings] = value;
  }
  return out;
}

async function jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const { body } = await readBody(req, 1024 * 1024);
  if (!body) throw new BadControlRequest('body too large or missing');
  if (body.length === 0) return {};
  const value: unknown = JSON.parse(body.toString('utf8'));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BadControlRequest('body must be a JSON object');
  return value as Record<string, unknown>;
}

export async function handleControl(state: EmulatorState, actions: ControlActions, req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  if (!url.pathname.startsWith('/_emulator/')) return false;
  const action = `${req.method ?? 'GET'} ${url.pathname.slice('/_emulator/'.length)}`;
  try {
    switch (action) {
      case 'GET stats':
        sendJson(res, 200, state.snapshot());
        break;
      case 'GET sent':
        sendJson(res, 200, state.sent.map((r) => ({
          upn: r.upn, via: r.via, requestId: r.requestId, contentType: r.contentType, size: r.size, sha256: r.sha256,
          recipients: r.recipients, at: r.at.toISOString(), attachments: (r.attachments ?? []).map((a) => ({ name: a.name, size: a.size, sha256: a.sha256 })),
        })));
        break;
      case 'GET requests':
        sendJson(res, 200, state.requests);
        break;
      case 'GET drafts': {
        const upn = url.searchParams.get('upn');
        const all = [...state.drafts.values()].flatMap((m) => [...m.values()]);
        sendJson(res, 200, all.filter((d) => upn === null || d.upn.toLowerCase() === upn.toLowerCase())
          .map((d) => ({ id: d.id, upn: d.upn, createdAt: d.createdAt.toISOString(), attachments: d.attachments.length })));
        break;
      }
      case 'POST faults': {
        const body = await jsonBody(req);
        actions.setFaults(parseFaults(body));
        const down = body['down'];
        if (down !== undefined) {
          if (down !== '503' && down !== 'reset' && down !== false) throw new BadControlRequest("down must be '503', 'reset' or false");
          actions.setDown(down);
        }
        sendJson(res, 200, { faults: state.faults, down: state.down });
        break;
      }
      case 'POST script': {
        const body = await jsonBody(req);
        const { upn, steps } = body;
        if (typeof upn !== 'string' || !Array.isArray(steps)) throw new BadControlRequest('expected {upn, steps: [...]}');
        actions.script(upn, steps as ScriptStep[]);
        sendJson(res, 200, { ok: true });
        break;
      }
      case 'POST script-token': {
        const { steps } = await jsonBody(req);
        if (!Array.isArray(steps)) throw new BadControlRequest('expected {steps: [...]}');
        actions.scriptToken(steps as TokenStep[]);
        sendJson(res, 200, { ok: true });
        break;
      }
      case 'POST revoke':
        actions.revokeTokens();
        sendJson(res, 200, { ok: true });
        break;
      case 'POST reset':
        actions.reset();
        sendJson(res, 200, { ok: true });
        break;
      default:
        sendJson(res, 404, { error: `unknown control action '${action}'` });
    }
  } catch (err) {
    sendJson(res, 400, { error: err instanceof Error ? err.message : String(err) });
  }
  return true;
}

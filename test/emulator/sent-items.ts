/**
 * Sent Items: every message Graph sends with a copy kept (MIME sendMail, JSON sendMail unless
 * saveToSentItems is false, a sent draft) appears in the mailbox's Sent Items after `sentItemsDelayMs`, with
 * its internetMessageId (the Message-ID header, the JSON's internetMessageId, or one Exchange makes up).
 * GET /users/{upn}/mailFolders/sentitems/messages?$filter=internetMessageId eq '<…>' lists them; it needs
 * a read permission (Mail.ReadBasic.All or more) in the token's roles, else 403 ErrorAccessDenied.
 */
import { GraphError } from './call.js';
import type { GraphCall, Reply } from './call.js';
import { parseJwt } from './jwt.js';

/** Roles that may read Sent Items, least first: Mail.ReadBasic.All is the least privilege for listing messages. */
export const DEFAULT_LOOKUP_ROLES = ['Mail.ReadBasic.All', 'Mail.ReadBasic', 'Mail.Read', 'Mail.ReadWrite'];

const FILTER = /^\s*internetMessageId\s+eq\s+'((?:[^']|'')*)'\s*$/i;
const SELECTABLE = ['id', 'internetMessageId', 'sentDateTime', 'subject'];

function checkReadRole(call: GraphCall): void {
  const token = /^Bearer\s+(\S+)$/i.exec(call.req.headers.authorization ?? '')?.[1] ?? '';
  const roles = parseJwt(token)?.payload['roles'];
  // No roles claim: the grant is RBAC for Applications in Exchange, which the emulator takes as granted.
  if (!Array.isArray(roles)) return;
  if (!roles.some((r) => call.state.config.lookupRoles.includes(String(r)))) {
    throw new GraphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
  }
}

/** GET …/mailFolders/sentitems/messages with a $filter on internetMessageId (the only filter the relay uses). */
export function listSentItems(call: GraphCall): Reply {
  checkReadRole(call);
  const url = new URL(call.req.url ?? '/', 'https://emulator.invalid');
  const filter = url.searchParams.get('$filter');
  const m = filter === null ? null : FILTER.exec(filter);
  if (filter !== null && !m) throw new GraphError(400, 'BadRequest', `Invalid filter clause: the emulator supports internetMessageId eq '…' only (got ${filter}).`);
  const wanted = m ? m[1]!.replace(/''/g, "'") : null;
  const select = (url.searchParams.get('$select') ?? SELECTABLE.join(',')).split(',').map((s) => s.trim());
  const unknown = select.filter((s) => !SELECTABLE.includes(s));
  if (unknown.length) throw new GraphError(400, 'BadRequest', `Could not find a property named '${unknown[0]}' on type 'microsoft.graph.message'.`);
  const top = Number(url.searchParams.get('$top') ?? 10);
  const now = Date.now();
  const items = call.state
    .sentItemsOf(call.upn)
    .filter((i) => i.visibleAt <= now && (wanted === null || i.internetMessageId.toLowerCase() === wanted.toLowerCase()))
    .slice(0, Number.isInteger(top) && top > 0 ? top : 10);
  const value = items.map((i) => {
    const out: Record<string, unknown> = { '@odata.etag': `W/"${i.id.slice(-12)}"` };
    for (const key of select) out[key] = (i as unknown as Record<string, unknown>)[key];
    return out;
  });
  return { status: 200, json: { '@odata.context': `${call.state.origin}/v1.0/$metadata#users('${encodeURIComponent(call.upn)}')/mailFolders('sentitems')/messages(${select.join(',')})`, value } };
}

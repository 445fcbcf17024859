/** What an app-only token says it may do: the application roles (permissions granted in Entra ID) in its payload. */

/**
 * The `roles` claim of an access token (its payload, base64url JSON), or null when it has none: with RBAC
 * for Applications the grant lives in Exchange, and the token carries no roles. The token is not verified
 * here; Graph does that.
 */
export function tokenRoles(token: string): string[] | null {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { roles?: unknown };
    if (!Array.isArray(payload.roles)) return null;
    const roles = payload.roles.filter((r): r is string => typeof r === 'string');
    return roles.length ? roles : null;
  } catch {
    return null;
  }
}

/** What the relay can do with these roles; `known` false when the token says nothing (RBAC for Applications). */
export interface Capabilities {
  known: boolean;
  roles: string[];
  /** Mail.Send: MIME and JSON sendMail (and sending a draft). */
  send: boolean;
  /** Mail.ReadWrite: the large-message route (a draft, attachment uploads, then send). */
  drafts: boolean;
}

export function capabilities(roles: string[] | null): Capabilities {
  if (roles === null) return { known: false, roles: [], send: true, drafts: true };
  return { known: true, roles, send: roles.includes('Mail.Send'), drafts: roles.includes('Mail.ReadWrite') };
}

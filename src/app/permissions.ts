/** What an account's token roles allow, said the same way at start, by check-config --strict and by test-send. */

import { capabilities, type Capabilities } from '../auth/token-roles.js';

export interface PermissionSettings {
  /** delivery.largeMessages. */
  largeMessages: boolean;
  /** What one Graph request carries (bytes before base64). */
  oneRequest: number;
  /** The account's checkPermissions. */
  checkPermissions: boolean;
}

export interface PermissionSummary {
  caps: Capabilities;
  /** Whether the large-message route may be used: Mail.ReadWrite granted, unknown, or not checked. */
  drafts: boolean;
  level: 'info' | 'warn' | 'error';
  text: string;
}

export function permissionSummary(name: string, roles: string[] | null, s: PermissionSettings): PermissionSummary {
  const caps = capabilities(roles);
  const drafts = !caps.known || !s.checkPermissions || caps.drafts;
  const list = caps.roles.join(', ');
  if (!caps.known) {
    return { caps, drafts, level: 'info', text: `account ${name}: the token carries no roles (with RBAC for Applications the grant is in Exchange, out of the relay's sight): which routes work is not known, and nothing is refused for it` };
  }
  if (!caps.send && s.checkPermissions) {
    return { caps, drafts, level: 'error', text: `account ${name}: Mail.Send missing (token roles: ${list}): Graph will refuse every message of this account; grant Mail.Send (or set checkPermissions: false where Exchange grants it)` };
  }
  if (!drafts && s.largeMessages) {
    return { caps, drafts, level: 'warn', text: `account ${name}: Mail.ReadWrite missing (token roles: ${list}): messages over ${s.oneRequest} bytes (one Graph request) are refused at MAIL FROM SIZE= and at the end of DATA` };
  }
  return { caps, drafts, level: 'info', text: `account ${name}: token roles ${list}: every route is allowed${s.checkPermissions ? '' : ' (checkPermissions off: nothing is refused for the roles)'}` };
}

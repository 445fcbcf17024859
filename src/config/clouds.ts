/** The national clouds: which Graph endpoint and which Entra ID authority host each one uses. */

export type CloudName = 'global' | 'usgov' | 'usgov-dod' | 'china';

export interface CloudEndpoints {
  graphUrl: string;
  authorityHost: string;
}

export const CLOUDS: Record<CloudName, CloudEndpoints> = {
  global: { graphUrl: 'https://graph.microsoft.com', authorityHost: 'https://login.microsoftonline.com' },
  usgov: { graphUrl: 'https://graph.microsoft.us', authorityHost: 'https://login.microsoftonline.us' },
  'usgov-dod': { graphUrl: 'https://dod-graph.microsoft.us', authorityHost: 'https://login.microsoftonline.us' },
  china: { graphUrl: 'https://microsoftgraph.chinacloudapi.cn', authorityHost: 'https://login.partner.microsoftonline.cn' },
};

export const CLOUD_NAMES = Object.keys(CLOUDS) as CloudName[];

/** Authority hosts msal-node already knows; any other host must be trusted explicitly (knownAuthorities). */
export function isWellKnownAuthorityHost(authorityHost: string): boolean {
  return Object.values(CLOUDS).some((c) => c.authorityHost === authorityHost);
}

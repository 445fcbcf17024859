/** Managed identity tokens through msal-node's ManagedIdentityApplication (the host's endpoint, no secret). */

import { ManagedIdentityApplication, type AuthenticationResult, type NodeSystemOptions } from '@azure/msal-node';

export type AcquireToken = (fresh: boolean) => Promise<AuthenticationResult | null>;

/**
 * msal finds the source itself (App Service/Container Apps, Arc, Cloud Shell, Service Fabric from
 * their environment variables, else IMDS). `userAssignedClientId` (AZURE_CLIENT_ID) picks a
 * user-assigned identity; without it the system-assigned one is used.
 */
export function managedIdentityAcquirer(graphUrl: string, userAssignedClientId: string | null, system: NodeSystemOptions): AcquireToken {
  const app = new ManagedIdentityApplication({
    ...(userAssignedClientId ? { managedIdentityIdParams: { userAssignedClientId } } : {}),
    system,
  });
  // Managed identity endpoints take a resource, not a scope.
  return (fresh) => app.acquireToken({ resource: graphUrl, forceRefresh: fresh });
}

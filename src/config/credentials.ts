/** Chooses the Graph credential from `graph.credential` and the inputs present, and says what is missing. */

export const CREDENTIAL_SETTINGS = ['auto', 'secret', 'certificate', 'workload-identity', 'managed-identity'] as const;
export type CredentialSetting = (typeof CREDENTIAL_SETTINGS)[number];
export type CredentialKind = Exclude<CredentialSetting, 'auto'>;

export type CredentialSelection = { ok: true; kind: CredentialKind } | { ok: false; key: string; problem: string };

/** The graph.* settings that decide the credential (a part of GraphConfig). */
export interface CredentialInputs {
  credential: CredentialSetting;
  tenantId: string | null;
  clientId: string | null;
  clientSecret: string | null;
  clientCertificatePath: string | null;
  federatedTokenFile: string | null;
}

/**
 * Set by the Azure hosts whose managed identity msal-node reaches through an environment variable
 * (App Service, Container Apps, Functions, Arc, Cloud Shell, Service Fabric). IMDS (VMs, node pools)
 * has no marker, so `auto` never guesses it: it must be asked for with `managed-identity`.
 */
const MANAGED_IDENTITY_MARKERS = ['IDENTITY_ENDPOINT', 'MSI_ENDPOINT', 'IDENTITY_SERVER_THUMBPRINT'];

const MISSING_ALL =
  'no Graph credential: set a client secret (AZURE_CLIENT_SECRET / AZURE_CLIENT_SECRET_FILE), a certificate (AZURE_CLIENT_CERTIFICATE_PATH), ' +
  'a workload identity token file (AZURE_FEDERATED_TOKEN_FILE), or graph.credential: managed-identity';

/**
 * `auto` follows DefaultAzureCredential's order: explicit app credentials (certificate, then secret),
 * then workload identity, then a managed identity the host advertises.
 */
export function selectCredential(g: CredentialInputs, env: NodeJS.ProcessEnv): CredentialSelection {
  let kind: CredentialKind;
  if (g.credential !== 'auto') kind = g.credential;
  else if (g.clientCertificatePath) kind = 'certificate';
  else if (g.clientSecret) kind = 'secret';
  else if (g.federatedTokenFile) kind = 'workload-identity';
  else if (MANAGED_IDENTITY_MARKERS.some((v) => env[v])) kind = 'managed-identity';
  else return { ok: false, key: 'graph.credential', problem: MISSING_ALL };

  // A managed identity needs neither tenant nor app: the host knows them (AZURE_CLIENT_ID picks a user-assigned one).
  if (kind === 'managed-identity') return { ok: true, kind };
  if (!g.tenantId) return { ok: false, key: 'graph.tenantId', problem: 'is required when delivery.mode is graph (or set AZURE_TENANT_ID)' };
  if (!g.clientId) return { ok: false, key: 'graph.clientId', problem: 'is required when delivery.mode is graph (or set AZURE_CLIENT_ID)' };
  switch (kind) {
    case 'secret':
      if (!g.clientSecret) return { ok: false, key: 'graph.clientSecret', problem: 'is required with graph.credential: secret (or set AZURE_CLIENT_SECRET or AZURE_CLIENT_SECRET_FILE)' };
      break;
    case 'certificate':
      if (!g.clientCertificatePath) return { ok: false, key: 'graph.clientCertificatePath', problem: 'is required with graph.credential: certificate (or set AZURE_CLIENT_CERTIFICATE_PATH)' };
      break;
    case 'workload-identity':
      if (!g.federatedTokenFile) return { ok: false, key: 'graph.federatedTokenFile', problem: 'is required with graph.credential: workload-identity (or set AZURE_FEDERATED_TOKEN_FILE)' };
      break;
  }
  return { ok: true, kind };
}

/** Entra ID's refusals of a token request, by AADSTS code, with what an administrator changes to fix each. */

const HINTS: Record<string, string> = {
  AADSTS7000215: 'the client secret is wrong: use the secret\'s Value (shown once when it was created), not its Secret ID',
  AADSTS7000222: 'the client secret has expired: create a new one under Certificates & secrets',
  AADSTS700016: 'no application with this client id in this tenant: check AZURE_CLIENT_ID and AZURE_TENANT_ID (the app may be registered in another tenant)',
  AADSTS90002: 'no such tenant: check AZURE_TENANT_ID (the Directory (tenant) ID, or a verified domain) and graph.cloud',
  AADSTS900023: 'the tenant id is not valid: check AZURE_TENANT_ID',
  AADSTS700027: 'the certificate assertion was refused: upload this certificate (its public part) to the app registration, or check that it has not expired',
  AADSTS700024: 'the client assertion is outside its validity: check the clock of this machine',
  AADSTS70021: 'no federated credential matches the workload identity token: check its issuer and subject (system:serviceaccount:<namespace>:<service account>)',
  AADSTS7000229: 'the application has no service principal in this tenant: an administrator must consent to it (Enterprise applications)',
  AADSTS500011: 'the resource (Graph) is not known in this tenant: check graph.cloud and graph.graphUrl',
  AADSTS50059: 'no tenant in the request: set AZURE_TENANT_ID',
  AADSTS53003: 'a Conditional Access policy blocked the token: exclude this workload identity or allow its location',
  AADSTS7000112: 'the application is disabled in this tenant',
};

/** The AADSTS code of an Entra ID error message, if it has one. */
export function aadstsCode(message: string): string | null {
  return /\bAADSTS\d+\b/.exec(message)?.[0] ?? null;
}

/** What to change for a known refusal; null for others (the message itself is then what there is). */
export function entraHint(message: string): string | null {
  const code = aadstsCode(message);
  return code ? (HINTS[code] ?? null) : null;
}

/** Entra ID's own sentence ("AADSTS7000215: Invalid client secret provided…"), without msal's timestamps and trace ids around it. */
export function entraSentence(message: string): string {
  return /AADSTS\d+:.*?(?=\s+(?:Trace ID|Correlation ID|Timestamp):|$)/.exec(message)?.[0] ?? message;
}

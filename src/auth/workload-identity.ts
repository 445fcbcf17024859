/** Workload identity federation: the projected service-account token is the client assertion. */

import { readFile } from 'node:fs/promises';
import { FederatedTokenError } from '../errors.js';

/**
 * msal calls this for every token request that reaches Entra ID. The kubelet rotates the file
 * (about hourly, tokens valid ~24 h), so it is read each time, never cached.
 */
export function federatedAssertion(file: string): () => Promise<string> {
  return async () => {
    let token: string;
    try {
      token = (await readFile(file, 'utf8')).trim();
    } catch (err) {
      throw new FederatedTokenError(`cannot read the federated token file "${file}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!token) throw new FederatedTokenError(`the federated token file "${file}" is empty`);
    return token;
  };
}

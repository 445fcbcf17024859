/** What went wrong when an HTTP request got no answer, said the way an administrator would look for it. */

/** Plain causes by error code: DNS, refused, reset, TLS, timeouts. */
const CAUSES: Record<string, string> = {
  ENOTFOUND: 'DNS: the name does not resolve',
  EAI_AGAIN: 'DNS: no answer from the resolver',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by the peer',
  EPIPE: 'connection closed by the peer',
  ETIMEDOUT: 'connect timeout',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'connect timeout',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time (headers timeout)',
  UND_ERR_BODY_TIMEOUT: 'the answer stalled (body timeout)',
  UND_ERR_SOCKET: 'connection closed by the peer',
  UND_ERR_ABORTED: 'request aborted',
  ERR_TLS_CERT_ALTNAME_INVALID: 'TLS: the certificate is for another name',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS: the certificate is not trusted (unknown issuer; a TLS-inspecting proxy needs its CA in NODE_EXTRA_CA_CERTS)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'TLS: the certificate is not trusted (unknown issuer; a TLS-inspecting proxy needs its CA in NODE_EXTRA_CA_CERTS)',
  SELF_SIGNED_CERT_IN_CHAIN: 'TLS: a self-signed certificate in the chain (a TLS-inspecting proxy needs its CA in NODE_EXTRA_CA_CERTS)',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS: a self-signed certificate',
  CERT_HAS_EXPIRED: 'TLS: the certificate has expired',
  ERR_SSL_WRONG_VERSION_NUMBER: 'TLS: the peer does not speak TLS here',
};

/** The error code of a failed request, looking through undici's and fetch's wrappers. */
export function networkErrorCode(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown; cause?: { code?: unknown } } };
  for (const c of [e?.code, e?.cause?.code, e?.cause?.cause?.code]) if (typeof c === 'string' && c) return c;
  return 'UNKNOWN';
}

/** "connection refused (ECONNREFUSED)": the cause in words, then its code to search for. */
export function describeNetworkError(err: unknown): string {
  const code = networkErrorCode(err);
  const words = CAUSES[code];
  if (words) return `${words} (${code})`;
  const message = (err as Error)?.message ?? String(err);
  return code === 'UNKNOWN' ? message : `${message} (${code})`;
}

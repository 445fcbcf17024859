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

/** A tunnel the proxy refused (undici: "Proxy response (407) !== 200 when HTTP Tunneling"): its HTTP status. */
export function proxyRefusal(err: unknown): number | null {
  const e = err as { message?: unknown; cause?: { message?: unknown } };
  for (const m of [e?.message, e?.cause?.message]) {
    const hit = typeof m === 'string' ? /Proxy response \((\d{3})\)/.exec(m) : null;
    if (hit) return Number(hit[1]);
  }
  return null;
}

const PROXY_STATUS: Record<number, string> = {
  407: 'HTTP 407 Proxy Authentication Required: give the proxy a username and password (graph.proxy.username and password, or user:password@ in HTTPS_PROXY)',
  401: 'HTTP 401: the proxy did not take its username and password (graph.proxy, or user:password@ in HTTPS_PROXY)',
  403: 'HTTP 403: the proxy\'s rules do not allow a tunnel to this host and port',
};

/** The error code of a failed request, looking through undici's and fetch's wrappers; PROXY_<status> for a refused tunnel. */
export function networkErrorCode(err: unknown): string {
  const refused = proxyRefusal(err);
  if (refused !== null) return `PROXY_${refused}`;
  const e = err as { code?: unknown; cause?: { code?: unknown; cause?: { code?: unknown } } };
  for (const c of [e?.code, e?.cause?.code, e?.cause?.cause?.code]) if (typeof c === 'string' && c) return c;
  return 'UNKNOWN';
}

/** "connection refused (ECONNREFUSED)": the cause in words, then its code to search for. */
export function describeNetworkError(err: unknown): string {
  const code = networkErrorCode(err);
  const refused = proxyRefusal(err);
  if (refused !== null) return `the proxy refused the tunnel: ${PROXY_STATUS[refused] ?? `HTTP ${refused}`} (${code})`;
  const words = CAUSES[code];
  if (words) return `${words} (${code})`;
  const message = (err as Error)?.message ?? String(err);
  return code === 'UNKNOWN' ? message : `${message} (${code})`;
}

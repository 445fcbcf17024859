/** Minimal JWT handling: HS256 access tokens we mint, and RS256/PS256 client assertions we verify. */
import { constants, createHash, createHmac, timingSafeEqual, verify, X509Certificate } from 'node:crypto';

export type JsonObject = Record<string, unknown>;

export function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

function decodeJson(segment: string): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonObject) : undefined;
  } catch {
    return undefined;
  }
}

interface ParsedJwt {
  header: JsonObject;
  payload: JsonObject;
  signingInput: string;
  signature: Buffer;
}

export function parseJwt(token: string): ParsedJwt | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  const [h, p, s] = parts as [string, string, string];
  const header = decodeJson(h);
  const payload = decodeJson(p);
  if (!header || !payload) return undefined;
  return { header, payload, signingInput: `${h}.${p}`, signature: Buffer.from(s, 'base64url') };
}

export function signHs256(payload: JsonObject, secret: Buffer): string {
  const input = `${base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${base64url(JSON.stringify(payload))}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** Returns the payload if the HS256 signature is ours; claims are checked by the caller. */
export function verifyHs256(token: string, secret: Buffer): JsonObject | undefined {
  const jwt = parseJwt(token);
  if (!jwt || jwt.header['alg'] !== 'HS256') return undefined;
  const expected = createHmac('sha256', secret).update(jwt.signingInput).digest();
  if (expected.length !== jwt.signature.length || !timingSafeEqual(expected, jwt.signature)) return undefined;
  return jwt.payload;
}

export interface AssertionCheck {
  ok: boolean;
  /** AADSTS code and text mirroring what Entra ID answers for the same defect. */
  aadsts?: number;
  reason?: string;
}

// Tolerate a client clock slightly ahead of ours for nbf; expiry is checked strictly.
const NBF_SKEW_SEC = 300;

/**
 * Verifies an RFC 7523 client assertion the way Entra ID does for a certificate credential:
 * signature by the registered cert's key, thumbprint header, audience, iss/sub, lifetime.
 */
export function verifyClientAssertion(token: string, certPem: string, clientId: string, audiences: string[]): AssertionCheck {
  const jwt = parseJwt(token);
  if (!jwt) return { ok: false, aadsts: 50027, reason: 'JWT token is invalid or malformed.' };
  const cert = new X509Certificate(certPem);
  const x5tS256 = jwt.header['x5t#S256'];
  const x5t = jwt.header['x5t'];
  const thumbOk =
    (typeof x5tS256 === 'string' && x5tS256 === base64url(createHash('sha256').update(cert.raw).digest())) ||
    (typeof x5t === 'string' && x5t === base64url(createHash('sha1').update(cert.raw).digest()));
  if (!thumbOk) {
    return { ok: false, aadsts: 700027, reason: 'The certificate with identifier used to sign the client assertion is not registered on application.' };
  }
  const alg = jwt.header['alg'];
  let signatureOk = false;
  try {
    if (alg === 'RS256') {
      signatureOk = verify('sha256', Buffer.from(jwt.signingInput), { key: cert.publicKey, padding: constants.RSA_PKCS1_PADDING }, jwt.signature);
    } else if (alg === 'PS256') {
      signatureOk = verify('sha256', Buffer.from(jwt.signingInput),
        { key: cert.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, jwt.signature);
    }
  } catch {
    signatureOk = false;
  }
  if (!signatureOk) return { ok: false, aadsts: 700027, reason: 'Client assertion failed signature validation.' };
  const { aud, iss, sub, exp, nbf } = jwt.payload;
  const audList = Array.isArray(aud) ? aud : [aud];
  if (!audList.some((a) => typeof a === 'string' && audiences.includes(a))) {
    return { ok: false, aadsts: 700021, reason: `Client assertion audience claim does not match Realm issuer. Review the documentation at https://aka.ms/certCreds . (aud=${String(aud)})` };
  }
  if (iss !== clientId || sub !== clientId) {
    return { ok: false, aadsts: 700023, reason: "Client assertion 'iss' and 'sub' claims must both be the client_id." };
  }
  const now = Math.floor(Date.now() / 1000);
  if (typeof exp !== 'number' || exp <= now || (typeof nbf === 'number' && nbf - NBF_SKEW_SEC > now)) {
    return { ok: false, aadsts: 700024, reason: 'Client assertion is not within its valid time range.' };
  }
  return { ok: true };
}

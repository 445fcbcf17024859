/**
 * Every error the relay raises on purpose: one base class with a stable `code` to branch on and search logs
 * for, as undici's errors.js does. Messages are for people; codes are for code.
 */

export class RelayError extends Error {
  override name = 'RelayError';
  readonly code: string = 'RELAY_ERR';
}

/** A setting (or environment variable) is wrong; `key` names it: "listeners[0].port", "AZURE_TENANT_ID". */
export class ConfigError extends RelayError {
  override name = 'ConfigError';
  override readonly code = 'RELAY_ERR_CONFIG';
  constructor(
    readonly key: string,
    problem: string,
  ) {
    super(`${key}: ${problem}`);
  }
}

/** The relay cannot start, for a reason an administrator can fix; the message says how. */
export class StartError extends RelayError {
  override name = 'StartError';
  override readonly code = 'RELAY_ERR_START';
}

/** A command line the CLI cannot run: one line, then the usage. */
export class UsageError extends RelayError {
  override name = 'UsageError';
  override readonly code = 'RELAY_ERR_USAGE';
}

/** A spool file that cannot be read as one: its name is kept so an administrator can find it. */
export class SpoolFileError extends RelayError {
  override name = 'SpoolFileError';
  override readonly code = 'RELAY_ERR_SPOOL_FILE';
  constructor(
    readonly file: string,
    why: string,
  ) {
    super(`${file}: ${why}`);
  }
}

/** No Graph token: Entra ID refused (errorCode is its AADSTS code) or could not be reached. */
export class TokenError extends RelayError {
  override name = 'TokenError';
  override readonly code = 'RELAY_ERR_TOKEN';
  constructor(
    message: string,
    /** Entra ID's AADSTS code or msal's error code ("unknown" without either). */
    readonly errorCode: string,
    /** What to change, for a refusal Entra ID explains. */
    readonly hint: string | null = null,
  ) {
    super(message);
  }
}

/** The workload identity token file cannot be read, or is empty. */
export class FederatedTokenError extends RelayError {
  override name = 'FederatedTokenError';
  override readonly code = 'RELAY_ERR_FEDERATED_TOKEN';
}

/** A Graph request that got no HTTP answer. `bodySent` tells whether Graph may have received the whole message. */
export class GraphNetworkError extends RelayError {
  override name = 'GraphNetworkError';
  override readonly code = 'RELAY_ERR_GRAPH_NETWORK';
  constructor(
    /** The transport's code: ECONNREFUSED, UND_ERR_HEADERS_TIMEOUT, ENOTFOUND… */
    readonly networkCode: string,
    readonly bodySent: boolean,
    message: string,
    readonly clientRequestId: string,
  ) {
    super(message);
  }
}

/** A message whose MIME structure cannot be read into parts (the JSON and large routes need them). */
export class MimeScanError extends RelayError {
  override name = 'MimeScanError';
  override readonly code = 'RELAY_ERR_MIME_SCAN';
}

/** users[].passwordHash is not a hash this relay made. */
export class PasswordHashError extends RelayError {
  override name = 'PasswordHashError';
  override readonly code = 'RELAY_ERR_PASSWORD_HASH';
}

/** An SMTP reply the relay chose: the code, and a text that starts with its enhanced status code. */
export class SmtpReply extends RelayError {
  override name = 'SmtpReply';
  override readonly code = 'RELAY_ERR_SMTP_REPLY';
  constructor(
    /** What smtp-server sends: it reads `responseCode` and `message` of the error a callback returns. */
    readonly responseCode: number,
    text: string,
  ) {
    super(text);
  }
}

/** The client's connection ended before the end of DATA: nothing was acknowledged, nothing is kept. */
export class ClientGone extends RelayError {
  override name = 'ClientGone';
  override readonly code = 'RELAY_ERR_CLIENT_GONE';
}

/** A PROXY v2 header that no load balancer would send. */
export class ProxyHeaderError extends RelayError {
  override name = 'ProxyHeaderError';
  override readonly code = 'RELAY_ERR_PROXY_HEADER';
}

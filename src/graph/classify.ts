/** Every delivery failure is classified here, and only here: permanent or transient, and why. */

import type { GraphNetworkError } from '../errors.js';
import type { GraphResponse } from './http.js';

export type Verdict =
  | { kind: 'delivered' }
  | {
      kind: 'transient';
      reason: string;
      /** 429/503: the whole mailbox waits (Retry-After when given, else backoff). */
      throttle?: { retryAfterMs: number | null };
      /** Quota or submission block on the mailbox: a long pause and an error log. */
      mailboxBlocked?: boolean;
      /**
       * Graph may have sent the message: the whole request went out and no answer came, or a 5xx came after
       * it. The relay looks the message up in Sent Items before it sends it again.
       */
      outcomeUnknown?: boolean;
      /** 401: get one fresh token and try once more before deferring. */
      refreshToken?: boolean;
      /** The relay itself knows when to try again (the upload budget frees up then); overrides the retry schedule. */
      retryAfterMs?: number;
    }
  | { kind: 'permanent'; reason: string };

/** Graph error codes that decide the outcome whatever the HTTP status. */
const BY_CODE: Record<string, Verdict> = {
  ErrorInvalidRecipients: { kind: 'permanent', reason: 'invalid-recipients' },
  ErrorSendAsDenied: { kind: 'permanent', reason: 'send-as-denied' },
  ErrorAccessDenied: { kind: 'permanent', reason: 'access-denied' },
  ErrorInvalidUser: { kind: 'permanent', reason: 'invalid-user' },
  MailboxNotEnabledForRESTAPI: { kind: 'permanent', reason: 'mailbox-not-enabled' },
  ResourceNotFound: { kind: 'permanent', reason: 'invalid-user' },
  ErrorMessageSizeExceeded: { kind: 'permanent', reason: 'message-too-big' },
  RequestEntityTooLarge: { kind: 'permanent', reason: 'message-too-big' },
  ErrorMimeContentInvalidBase64String: { kind: 'permanent', reason: 'invalid-mime' },
  ErrorMimeContentInvalid: { kind: 'permanent', reason: 'invalid-mime' },
  ErrorMimeContentConversionFailed: { kind: 'permanent', reason: 'invalid-mime' },
  Authorization_RequestDenied: { kind: 'permanent', reason: 'access-denied' },
  ApplicationThrottled: { kind: 'transient', reason: 'throttled', throttle: { retryAfterMs: null } },
  TooManyRequests: { kind: 'transient', reason: 'throttled', throttle: { retryAfterMs: null } },
  ErrorQuotaExceeded: { kind: 'transient', reason: 'mailbox-quota-exceeded', mailboxBlocked: true },
  ErrorSubmissionQuotaExceeded: { kind: 'transient', reason: 'submission-quota-exceeded', mailboxBlocked: true },
  ErrorMessageSubmissionBlocked: { kind: 'transient', reason: 'submission-blocked', mailboxBlocked: true },
  ErrorServerBusy: { kind: 'transient', reason: 'throttled', throttle: { retryAfterMs: null } },
  InvalidAuthenticationToken: { kind: 'transient', reason: 'unauthorized', refreshToken: true },
};

/** HTTP statuses, used when the error code is absent or not in BY_CODE. */
function byStatus(status: number): Verdict {
  if (status >= 200 && status < 300) return { kind: 'delivered' };
  switch (status) {
    case 401:
      return { kind: 'transient', reason: 'unauthorized', refreshToken: true };
    case 429:
    case 503:
      return { kind: 'transient', reason: status === 429 ? 'throttled' : 'service-unavailable', throttle: { retryAfterMs: null } };
    case 408:
    case 500:
    case 502:
    case 504:
    case 507:
      return { kind: 'transient', reason: `http-${status}` };
    case 413:
      return { kind: 'permanent', reason: 'message-too-big' };
  }
  if (status >= 500) return { kind: 'transient', reason: `http-${status}` };
  return { kind: 'permanent', reason: `http-${status}` };
}

export function classifyResponse(res: Pick<GraphResponse, 'status' | 'error' | 'retryAfterMs'>): Verdict {
  const base = (res.error && BY_CODE[res.error.code]) || byStatus(res.status);
  if (base.kind === 'transient' && base.throttle) return { ...base, throttle: { retryAfterMs: res.retryAfterMs } };
  // A 503 or 5xx that names a Retry-After is asking for a pause as much as a 429 is.
  if (base.kind === 'transient' && res.retryAfterMs !== null && !base.refreshToken) return { ...base, throttle: { retryAfterMs: res.retryAfterMs } };
  return base;
}

/** No HTTP answer: transient always; the outcome is unknown when the whole body had been sent. */
export function classifyNetworkError(err: GraphNetworkError): Verdict {
  if (err.bodySent) return { kind: 'transient', reason: `network-${err.networkCode}`, outcomeUnknown: true };
  return { kind: 'transient', reason: `network-${err.networkCode}` };
}

/**
 * The answer to a request that submits the message (sendMail, sending a draft). A 5xx that is neither a
 * throttle (503) nor a full mailbox (507), and whose code does not say otherwise, may come after Graph has
 * taken the message (a gateway that timed out on a backend that went on): its outcome is unknown.
 */
export function classifySubmitResponse(res: Pick<GraphResponse, 'status' | 'error' | 'retryAfterMs'>, draftRoute: boolean): Verdict {
  const verdict = draftRoute ? classifyDraftResponse(res) : classifyResponse(res);
  const byCode = res.error !== null && BY_CODE[res.error.code] !== undefined;
  if (verdict.kind !== 'transient' || byCode || res.status < 500 || res.status === 503 || res.status === 507) return verdict;
  return { kind: 'transient', reason: `http-${res.status}`, outcomeUnknown: true };
}

/** A token that cannot be had is the relay's problem, never the message's: always transient. */
export function classifyTokenError(): Verdict {
  return { kind: 'transient', reason: 'token-unavailable' };
}

/** Graph's answer on the large-message route (draft, attachments, upload, send, delete). */
export function classifyDraftResponse(res: Pick<GraphResponse, 'status' | 'error' | 'retryAfterMs'>): Verdict {
  // Drafts need Mail.ReadWrite on top of Mail.Send: a 403 here is a missing permission, named by the caller.
  if (res.status === 403) return { kind: 'permanent', reason: 'large-route-forbidden' };
  // The draft we just made is gone (deleted by someone, or a replica lag): start over later.
  if (res.status === 404 && res.error?.code === 'ErrorItemNotFound') return { kind: 'transient', reason: 'draft-not-found' };
  return classifyResponse(res);
}

/** The mailbox's upload budget is spent for now: wait until the window frees enough, without a Graph call. */
export function classifyUploadBudget(retryAfterMs: number): Verdict {
  return { kind: 'transient', reason: 'upload-budget', retryAfterMs };
}

/** The message cannot be carried by any route (e.g. its body alone exceeds one request). */
export function classifyUnsendable(reason: 'message-too-big' | 'invalid-mime'): Verdict {
  return { kind: 'permanent', reason };
}

/** RFC 3463 enhanced status for a failure reason: used in bounces and in passthrough replies. */
export function enhancedStatus(reason: string, kind: 'transient' | 'permanent'): string {
  if (kind === 'transient') {
    if (reason === 'throttled' || reason === 'service-unavailable') return '4.7.0';
    if (reason.startsWith('network-')) return '4.4.1';
    if (reason === 'expired') return '4.4.7';
    return '4.3.0';
  }
  switch (reason) {
    case 'expired':
      return '4.4.7';
    case 'invalid-recipients':
      return '5.1.1';
    case 'invalid-user':
    case 'mailbox-not-enabled':
      return '5.1.8';
    case 'message-too-big':
      return '5.3.4';
    case 'invalid-mime':
      return '5.6.0';
    case 'send-as-denied':
    case 'access-denied':
    case 'large-route-forbidden':
      return '5.7.1';
    default:
      return '5.0.0';
  }
}

/** No answer: only a request that submits the message can have sent it; a lost draft call or look-up cannot. */
export function classifyStepNetworkError(err: GraphNetworkError, submits: boolean): Verdict {
  if (submits) return classifyNetworkError(err);
  return { kind: 'transient', reason: `network-${err.networkCode}` };
}

/**
 * A failure that is not the message's own: Graph or Entra ID could not be reached before the request went
 * out (a connection failure, no token). Unknown outcomes (the body was sent) are not among them: Graph may
 * have the message, and the Sent Items look-up decides.
 */
export function notReached(v: Verdict): boolean {
  return v.kind === 'transient' && !v.outcomeUnknown && (v.reason.startsWith('network-') || v.reason === 'token-unavailable');
}

/** The failure classification table: status and Graph error code → permanent or transient. */

import { describe, expect, it } from 'vitest';
import { classifyNetworkError, classifyResponse, classifyStepNetworkError, classifySubmitResponse } from '../../src/graph/classify.js';
import { parseGraphError, parseRetryAfter } from '../../src/graph/http.js';
import { GraphNetworkError } from '../../src/errors.js';

const res = (status: number, code?: string, retryAfterMs: number | null = null) => ({ status, retryAfterMs, error: code ? { code, message: '', requestId: null } : null });

describe('classification', () => {
  it.each([
    [400, 'ErrorInvalidRecipients'],
    [403, 'ErrorSendAsDenied'],
    [403, 'ErrorAccessDenied'],
    [404, 'ErrorInvalidUser'],
    [404, 'MailboxNotEnabledForRESTAPI'],
    [400, 'ErrorMessageSizeExceeded'],
    [400, 'ErrorMimeContentInvalidBase64String'],
    [413, undefined],
    [400, undefined],
    [404, undefined],
  ])('%i %s is permanent', (status, code) => {
    expect(classifyResponse(res(status, code)).kind).toBe('permanent');
  });

  it.each([[500], [502], [504], [507]])('%i is transient', (status) => {
    expect(classifyResponse(res(status))).toMatchObject({ kind: 'transient', reason: `http-${status}` });
  });

  it('429 and 503 pause the mailbox, with Retry-After when given', () => {
    expect(classifyResponse(res(429, 'ApplicationThrottled', 7000))).toMatchObject({ kind: 'transient', throttle: { retryAfterMs: 7000 } });
    expect(classifyResponse(res(503, undefined, null))).toMatchObject({ kind: 'transient', throttle: { retryAfterMs: null } });
  });

  it('quota and submission blocks are transient with a mailbox pause', () => {
    expect(classifyResponse(res(403, 'ErrorQuotaExceeded'))).toMatchObject({ kind: 'transient', mailboxBlocked: true });
    expect(classifyResponse(res(400, 'ErrorMessageSubmissionBlocked'))).toMatchObject({ kind: 'transient', mailboxBlocked: true });
  });

  it('401 asks for one fresh token', () => {
    expect(classifyResponse(res(401, 'InvalidAuthenticationToken'))).toMatchObject({ kind: 'transient', refreshToken: true });
  });

  it('no answer after the body was sent leaves the outcome unknown; before it, or on a step that sends nothing, it is a plain failure', () => {
    const timeout = new GraphNetworkError('UND_ERR_HEADERS_TIMEOUT', true, 'x', 'c');
    expect(classifyNetworkError(timeout)).toMatchObject({ kind: 'transient', outcomeUnknown: true });
    expect(classifyNetworkError(new GraphNetworkError('ECONNREFUSED', false, 'x', 'c'))).not.toHaveProperty('outcomeUnknown');
    expect(classifyStepNetworkError(timeout, true)).toMatchObject({ outcomeUnknown: true });
    expect(classifyStepNetworkError(timeout, false)).not.toHaveProperty('outcomeUnknown');
  });

  it('a 5xx after a submission may come after Graph took the message; 503, 507 and known codes say otherwise', () => {
    for (const status of [500, 502, 504, 599]) expect(classifySubmitResponse(res(status), false)).toEqual({ kind: 'transient', reason: `http-${status}`, outcomeUnknown: true });
    expect(classifySubmitResponse(res(503), false)).not.toHaveProperty('outcomeUnknown');
    expect(classifySubmitResponse(res(507), false)).not.toHaveProperty('outcomeUnknown');
    expect(classifySubmitResponse(res(500, 'ErrorServerBusy'), false)).toMatchObject({ throttle: { retryAfterMs: null } });
    expect(classifySubmitResponse(res(429, 'ApplicationThrottled', 1000), false)).not.toHaveProperty('outcomeUnknown');
    expect(classifySubmitResponse(res(403), true)).toMatchObject({ kind: 'permanent', reason: 'large-route-forbidden' });
    // Anything but a submission: a 5xx is a plain transient failure.
    expect(classifyResponse(res(502))).toEqual({ kind: 'transient', reason: 'http-502' });
  });

  it('parses Retry-After as seconds or an HTTP date, and Graph error JSON', () => {
    const now = Date.UTC(2026, 10, 28, 0, 0, 0);
    expect(parseRetryAfter('12', now)).toBe(12_000);
    expect(parseRetryAfter('Sat, 28 Nov 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseGraphError('{"error":{"code":"ErrorAccessDenied","message":"Access is denied.","innerError":{"request-id":"r-1"}}}', null)).toEqual({ code: 'ErrorAccessDenied', message: 'Access is denied.', requestId: 'r-1' });
    expect(parseGraphError('<html>bad gateway</html>', 'r-2')).toBeNull();
  });
});

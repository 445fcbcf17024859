/** One delivery attempt's Graph requests: one token (a fresh one, once, after a 401), and every failure turned into a verdict. */

import type { TokenProvider } from '../auth/token-provider.js';
import { GraphNetworkError, RelayError, TokenError } from '../errors.js';
import { classifyDraftResponse, classifyResponse, classifyStepNetworkError, classifySubmitResponse, classifyTokenError, type Verdict } from './classify.js';
import type { Body, GraphHttp, GraphRequest, GraphResponse } from './http.js';

/** What an attempt ended with: the verdict and what Graph said (status, code, request-id) for the log. */
export interface Outcome {
  verdict: Verdict;
  status?: number;
  code?: string;
  message?: string;
  requestId?: string | null;
  clientRequestId?: string;
}

/** A request whose answer ends the attempt; `outcome` says how. */
export class AttemptFailed extends RelayError {
  override name = 'AttemptFailed';
  override readonly code = 'RELAY_ERR_GRAPH_ATTEMPT';
  constructor(readonly outcome: Outcome) {
    super(outcome.message ?? outcome.verdict.kind);
  }
}

/**
 * The steps of the routes, and the Sent Items look-up. Only a request that submits the message (sendMail,
 * or sending a draft) can have sent it when no answer came; the draft route's steps are refused with 403
 * for want of Mail.ReadWrite.
 */
const STEPS = {
  sendMail: { name: 'sendMail', submits: true, draftRoute: false },
  draft: { name: 'the draft', submits: false, draftRoute: true },
  attach: { name: 'an attachment', submits: false, draftRoute: true },
  upload: { name: 'an attachment upload', submits: false, draftRoute: true },
  send: { name: 'sending the draft', submits: true, draftRoute: true },
  lookup: { name: 'the Sent Items look-up', submits: false, draftRoute: false },
} as const;
export type Step = keyof typeof STEPS;

export type StepRequest = Omit<GraphRequest, 'token' | 'body'> & {
  /** A factory: the retry after a 401 needs a fresh stream. */
  body: () => Body;
};

export class GraphAttempt {
  private token: string | null = null;

  constructor(
    private readonly http: GraphHttp,
    private readonly tokens: TokenProvider,
    private readonly mailbox: string,
  ) {}

  /** The token the attempt's requests carry (one, fetched once; a fresh one after a 401). */
  currentToken(): Promise<string> {
    return this.getToken(false);
  }

  /** A Graph call with the attempt's token. Returns a 2xx answer; anything else throws AttemptFailed. */
  async call(step: Step, req: StepRequest): Promise<GraphResponse> {
    for (let tryNo = 0; ; tryNo++) {
      const token = await this.getToken(tryNo > 0);
      const res = await this.guard(step, () => this.http.request({ ...req, token, body: req.body() }));
      if (res.status >= 200 && res.status < 300) return res;
      const { submits, draftRoute } = STEPS[step];
      const verdict = submits ? classifySubmitResponse(res, draftRoute) : draftRoute ? classifyDraftResponse(res) : classifyResponse(res);
      if (verdict.kind === 'transient' && verdict.refreshToken && tryNo === 0) continue;
      throw new AttemptFailed(this.outcome(step, res, verdict));
    }
  }

  /** One chunk to a pre-authenticated upload URL: used verbatim, without Authorization. */
  async put(uploadUrl: string, chunk: Buffer, first: number, total: number): Promise<void> {
    const extraHeaders = { 'content-range': `bytes ${first}-${first + chunk.length - 1}/${total}` };
    const res = await this.guard('upload', () => this.http.request({ method: 'PUT', path: uploadUrl, token: null, contentType: 'application/octet-stream', body: chunk, length: chunk.length, extraHeaders }));
    if (res.status >= 200 && res.status < 300) return;
    throw new AttemptFailed(this.outcome('upload', res, classifyDraftResponse(res)));
  }

  /** Best effort (a half-built draft): the attempt's own failure is what gets reported. */
  async delete(path: string): Promise<void> {
    try {
      const token = await this.getToken(false);
      await this.http.request({ method: 'DELETE', path, token, contentType: null, body: null, length: 0 });
    } catch {
      // Reported by the caller's outcome, not here.
    }
  }

  private async getToken(fresh: boolean): Promise<string> {
    if (this.token && !fresh) return this.token;
    try {
      this.token = await this.tokens.getToken(fresh);
      return this.token;
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      throw new AttemptFailed({ verdict: classifyTokenError(), code: err.errorCode, message: err.message });
    }
  }

  private async guard(step: Step, fn: () => Promise<GraphResponse>): Promise<GraphResponse> {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof GraphNetworkError)) throw err;
      const verdict = classifyStepNetworkError(err, STEPS[step].submits);
      throw new AttemptFailed({ verdict, code: err.networkCode, message: err.message, clientRequestId: err.clientRequestId });
    }
  }

  private outcome(step: Step, res: GraphResponse, verdict: Verdict): Outcome {
    const code = res.error?.code;
    let message = res.error?.message ?? `HTTP ${res.status}`;
    if (verdict.kind === 'permanent' && verdict.reason === 'large-route-forbidden') {
      message = `Graph refused ${STEPS[step].name} (${res.status} ${code ?? 'Forbidden'}): the large-message route needs the Mail.ReadWrite application permission for ${this.mailbox}`;
    } else if (STEPS[step].draftRoute) {
      message = `${STEPS[step].name}: ${message}`;
    }
    return { verdict, status: res.status, code, message, requestId: res.error?.requestId ?? res.requestId, clientRequestId: res.clientRequestId };
  }
}

/** A 2xx answer as the attempt's outcome. */
export function delivered(res: GraphResponse): Outcome {
  return { verdict: { kind: 'delivered' }, status: res.status, requestId: res.requestId, clientRequestId: res.clientRequestId };
}

/** The large-message route: a draft made from the message minus its big attachments, the attachments uploaded, then sent. */

import { open, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { TokenProvider } from '../auth/token-provider.js';
import { TokenError } from '../auth/token-provider.js';
import { classifyDraftNetworkError, classifyDraftResponse, classifyTokenError, classifyUploadBudget, type Verdict } from '../delivery/classify.js';
import { GraphNetworkError } from './client.js';
import { fileAttachment, uploadSessionItem, type AttachmentInfo } from './mime-attachments.js';
import { base64OfRanges } from '../delivery/compose.js';
import { partToBuffer, partToFile } from './part-body.js';
import { chunkRanges, draftPath, messagesPath, uploadsDirectly, UPLOAD_CHUNK } from './planned-requests.js';
import type { Body, GraphRest, JsonResponse } from './rest.js';
import type { LargeWork } from './route-plan.js';
import type { UploadBudget } from './upload-budget.js';
import { readInto } from '../spool/read-range.js';

/** Parts whose encoded form is under this are decoded in memory; bigger ones go to a temp file first. */
const IN_MEMORY_ENCODED = 4 * 1024 * 1024;

export interface RouteOutcome {
  verdict: Verdict;
  status?: number;
  code?: string;
  message?: string;
  requestId?: string | null;
  clientRequestId?: string;
  /** How the draft was made, for the log. */
  draft?: 'mime' | 'json';
  attachments?: number;
}

export interface LargeRouteDeps {
  rest: GraphRest;
  tokens: TokenProvider;
  budget: UploadBudget;
  /** The spool's tmp/ folder: decoded attachments wait there while they upload (recovery empties it). */
  tmpDir: string;
}

export interface LargeMessage {
  id: string;
  mailbox: string;
  /** The Bcc: header for envelope-only recipients, put in front of the MIME as the MIME route does. */
  prefix: Buffer;
  /** The spool file; the message is at its start (the envelope follows). */
  dataPath: string;
}

/** A Graph answer that ends the attempt. */
class StepFailed extends Error {
  constructor(readonly outcome: RouteOutcome) {
    super(outcome.message ?? 'step failed');
  }
}

const STEP_NAMES = { draft: 'the draft', attach: 'an attachment', upload: 'an attachment upload', send: 'sending the draft' } as const;
type Step = keyof typeof STEP_NAMES;

/** Byte sources for an attachment: decoded in memory, or a temp file read range by range. */
interface Source {
  size: number;
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

export class LargeMessageRoute {
  constructor(private readonly deps: LargeRouteDeps) {}

  /** Runs the plan's large route (route-plan.ts decided the draft and which attachments go up). */
  async send(msg: LargeMessage, work: LargeWork): Promise<RouteOutcome> {
    const { draft, attachments: detached } = work;
    const draftBytes = draft.kind === 'mime' ? draft.bytes : draft.body.length;
    const estimate = draftBytes + detached.reduce((s, a) => s + a.rawSize, 0);
    const budget = this.deps.budget.reserve(msg.mailbox, estimate);
    if (!budget.ok) {
      return { verdict: classifyUploadBudget(budget.retryAfterMs), message: `the mailbox's upload budget is spent for now; retrying in ${Math.ceil(budget.retryAfterMs / 1000)} s` };
    }

    const ctx = new Attempt(this.deps, msg.mailbox);
    let draftId: string | null = null;
    try {
      const draftBody = (): Body => (draft.kind === 'mime' ? base64OfRanges(msg.prefix, msg.dataPath, draft.cut.kept) : draft.body);
      const created = await ctx.call('draft', 'POST', messagesPath(msg.mailbox), draft.kind === 'mime' ? 'text/plain' : 'application/json', draftBody, draftBytes);
      const id = created.json?.['id'];
      if (typeof id !== 'string' || !id) throw new StepFailed({ verdict: { kind: 'transient', reason: 'draft-without-id' }, status: created.status, message: 'Graph created a draft but returned no id' });
      draftId = id;
      const base = draftPath(msg.mailbox, id);
      for (const [i, a] of detached.entries()) await this.attach(ctx, msg, base, a, i);
      const sent = await ctx.call('send', 'POST', `${base}/send`, null, () => null, 0);
      draftId = null; // sent drafts leave the Drafts folder by themselves
      return { verdict: { kind: 'delivered' }, status: sent.status, requestId: sent.requestId, clientRequestId: sent.clientRequestId, draft: draft.kind, attachments: detached.length };
    } catch (err) {
      if (err instanceof StepFailed) return { ...err.outcome, draft: draft.kind };
      throw err;
    } finally {
      // No orphaned drafts: whatever failed, the half-built draft goes; the next attempt starts from scratch.
      if (draftId) await ctx.deleteDraft(draftPath(msg.mailbox, draftId));
    }
  }

  /** One POST or an upload session in chunks, as planned-requests.ts lays out for the decoded size. */
  private async attach(ctx: Attempt, msg: LargeMessage, base: string, a: AttachmentInfo, index: number): Promise<void> {
    const encoded = a.part.bodyEnd - a.part.bodyStart;
    const source = encoded < IN_MEMORY_ENCODED ? await bufferSource(msg.dataPath, a) : await fileSource(msg.dataPath, a, path.join(this.deps.tmpDir, `${msg.id}.att${index}.bin`));
    try {
      if (uploadsDirectly(source.size)) {
        const bytes = await source.read(0, source.size);
        const json = Buffer.from(JSON.stringify(fileAttachment(a, bytes)), 'utf8');
        await ctx.call('attach', 'POST', `${base}/attachments`, 'application/json', () => json, json.length);
        return;
      }
      const item = Buffer.from(JSON.stringify(uploadSessionItem(a, source.size)), 'utf8');
      const session = await ctx.call('upload', 'POST', `${base}/attachments/createUploadSession`, 'application/json', () => item, item.length);
      const uploadUrl = session.json?.['uploadUrl'];
      if (typeof uploadUrl !== 'string') throw new StepFailed({ verdict: { kind: 'transient', reason: 'upload-session-without-url' }, status: session.status, message: 'Graph created an upload session but returned no uploadUrl' });
      for (const [first, length] of chunkRanges(source.size)) await ctx.put(uploadUrl, await source.read(first, length), first, source.size);
    } finally {
      await source.close();
    }
  }
}

/** One attempt's Graph calls: token handling (one refresh on 401), classification, and the 403 hint. */
class Attempt {
  private token: string | null = null;

  constructor(
    private readonly deps: LargeRouteDeps,
    private readonly mailbox: string,
  ) {}

  private async getToken(fresh: boolean): Promise<string> {
    if (this.token && !fresh) return this.token;
    try {
      this.token = await this.deps.tokens.getToken(fresh);
      return this.token;
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      throw new StepFailed({ verdict: classifyTokenError(), code: err.errorCode, message: err.message });
    }
  }

  /** `body` is a factory: a retried call after a 401 needs a fresh stream. */
  async call(step: Step, method: 'POST' | 'DELETE', urlPath: string, contentType: string | null, body: () => Body, length: number): Promise<JsonResponse> {
    for (let tryNo = 0; ; tryNo++) {
      const token = await this.getToken(tryNo > 0);
      const res = await this.guard(step, () => this.deps.rest.call(method, urlPath, token, contentType, body(), length));
      if (res.status >= 200 && res.status < 300) return res;
      const verdict = classifyDraftResponse(res);
      if (verdict.kind === 'transient' && verdict.refreshToken && tryNo === 0) continue;
      throw new StepFailed(this.outcome(step, res, verdict));
    }
  }

  async put(uploadUrl: string, chunk: Buffer, first: number, total: number): Promise<void> {
    const res = await this.guard('upload', () => this.deps.rest.putChunk(uploadUrl, chunk, first, total));
    if (res.status >= 200 && res.status < 300) return;
    throw new StepFailed(this.outcome('upload', res, classifyDraftResponse(res)));
  }

  /** Best effort: a draft that cannot be deleted now is logged by the caller's outcome, not retried here. */
  async deleteDraft(urlPath: string): Promise<void> {
    try {
      const token = await this.getToken(false);
      await this.deps.rest.call('DELETE', urlPath, token, null, null, 0);
    } catch {
      // The attempt's own failure is what gets reported.
    }
  }

  private async guard(step: Step, fn: () => Promise<JsonResponse>): Promise<JsonResponse> {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof GraphNetworkError)) throw err;
      throw new StepFailed({ verdict: classifyDraftNetworkError(err, step === 'send'), code: err.code, message: err.message, clientRequestId: err.clientRequestId });
    }
  }

  private outcome(step: Step, res: JsonResponse, verdict: Verdict): RouteOutcome {
    const code = res.error?.code;
    let message = res.error?.message ?? `HTTP ${res.status}`;
    if (verdict.kind === 'permanent' && verdict.reason === 'large-route-forbidden') {
      message = `Graph refused ${STEP_NAMES[step]} (${res.status} ${code ?? 'Forbidden'}): the large-message route needs the Mail.ReadWrite application permission for ${this.mailbox}`;
    } else {
      message = `${STEP_NAMES[step]}: ${message}`;
    }
    return { verdict, status: res.status, code, message, requestId: res.error?.requestId ?? res.requestId, clientRequestId: res.clientRequestId };
  }
}

async function bufferSource(file: string, a: AttachmentInfo): Promise<Source> {
  const buf = await partToBuffer(file, a.part);
  return { size: buf.length, read: async (o, n) => buf.subarray(o, o + n), close: async () => undefined };
}

async function fileSource(file: string, a: AttachmentInfo, tmp: string): Promise<Source> {
  await unlink(tmp).catch(() => undefined); // left over from an attempt that died with the process
  let size: number;
  try {
    size = await partToFile(file, a.part, tmp);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  const fh = await open(tmp, 'r');
  // One buffer for every range: each is sent and answered before the next is read, and a fresh 3.75 MB
  // buffer per chunk left dozens of megabytes for the garbage collector while a big attachment uploaded.
  const buf = Buffer.allocUnsafe(Math.min(size, UPLOAD_CHUNK));
  return {
    size,
    read: (offset, length) => readInto(fh, buf, offset, length),
    async close() {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
    },
  };
}

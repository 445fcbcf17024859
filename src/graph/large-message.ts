/** The large-message route: a draft made from the message minus its big attachments, the attachments uploaded, then sent. */

import { open, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { TokenProvider } from '../auth/token-provider.js';
import { TokenError } from '../auth/token-provider.js';
import { classifyDraftNetworkError, classifyDraftResponse, classifyTokenError, classifyUnsendable, classifyUploadBudget, type Verdict } from '../delivery/classify.js';
import { GraphNetworkError } from './client.js';
import { buildJsonMessage } from './json-message.js';
import { describeMessage, fileAttachment, type AttachmentInfo } from './mime-attachments.js';
import { planCut } from './mime-cut.js';
import { base64Length, base64OfRanges } from '../delivery/compose.js';
import { MimeScanError, scanMime } from './mime-tree.js';
import { partToBuffer, partToFile } from './part-body.js';
import type { Body, GraphRest, JsonResponse } from './rest.js';
import type { UploadBudget } from './upload-budget.js';
import { readInto } from '../spool/read-range.js';

/** Graph: attachments under 3 MB go in one POST; from 3 MB to 150 MB through an upload session. */
export const MAX_DIRECT_ATTACHMENT = 3 * 1024 * 1024;
/** Under 4 MB per PUT and a multiple of 320 KiB, as Graph asks of upload sessions. */
export const UPLOAD_CHUNK = 12 * 320 * 1024;
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
  maxRequestBytes: number;
}

export interface LargeMessage {
  id: string;
  mailbox: string;
  bcc: readonly string[];
  /** The Bcc: header for envelope-only recipients, put in front of the MIME as the MIME route does. */
  prefix: Buffer;
  /** The spool file; the message is its first `size` bytes (the envelope follows). */
  dataPath: string;
  size: number;
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

  async send(msg: LargeMessage): Promise<RouteOutcome> {
    let root;
    try {
      root = await scanMime(msg.dataPath, msg.size);
    } catch (err) {
      if (!(err instanceof MimeScanError)) throw err;
      return { verdict: classifyUnsendable('invalid-mime'), message: `cannot split the message into parts: ${err.message}` };
    }
    const parts = describeMessage(root);
    const cut = planCut(msg.size, msg.prefix.length, parts.attachments, this.deps.maxRequestBytes);
    // Without a MIME cut that fits, the draft is built as JSON and every attachment is uploaded.
    const detached = cut ? cut.detached : parts.attachments;
    let jsonDraft: Buffer | null = null;
    if (!cut) {
      const message = await buildJsonMessage(msg.dataPath, root, parts, { extraBcc: msg.bcc });
      jsonDraft = Buffer.from(JSON.stringify(message), 'utf8');
      if (jsonDraft.length > this.deps.maxRequestBytes) {
        return { verdict: classifyUnsendable('message-too-big'), message: `the message body alone (${jsonDraft.length} bytes as JSON) exceeds one Graph request (${this.deps.maxRequestBytes} bytes)` };
      }
    }
    const draftBytes = cut ? base64Length(msg.prefix.length + cut.keptBytes) : jsonDraft!.length;
    const estimate = draftBytes + detached.reduce((s, a) => s + a.rawSize, 0);
    const budget = this.deps.budget.reserve(msg.mailbox, estimate);
    if (!budget.ok) {
      return { verdict: classifyUploadBudget(budget.retryAfterMs), message: `the mailbox's upload budget is spent for now; retrying in ${Math.ceil(budget.retryAfterMs / 1000)} s` };
    }

    const ctx = new Attempt(this.deps, msg.mailbox);
    let draftId: string | null = null;
    try {
      const draftBody = (): Body => (cut ? base64OfRanges(msg.prefix, msg.dataPath, cut.kept) : jsonDraft);
      const created = await ctx.call('draft', 'POST', `/v1.0/users/${encodeURIComponent(msg.mailbox)}/messages`, cut ? 'text/plain' : 'application/json', draftBody, draftBytes);
      const id = created.json?.['id'];
      if (typeof id !== 'string' || !id) throw new StepFailed({ verdict: { kind: 'transient', reason: 'draft-without-id' }, status: created.status, message: 'Graph created a draft but returned no id' });
      draftId = id;
      const base = `/v1.0/users/${encodeURIComponent(msg.mailbox)}/messages/${encodeURIComponent(id)}`;
      for (const [i, a] of detached.entries()) await this.attach(ctx, msg, base, a, i);
      const sent = await ctx.call('send', 'POST', `${base}/send`, null, () => null, 0);
      draftId = null; // sent drafts leave the Drafts folder by themselves
      return { verdict: { kind: 'delivered' }, status: sent.status, requestId: sent.requestId, clientRequestId: sent.clientRequestId, draft: cut ? 'mime' : 'json', attachments: detached.length };
    } catch (err) {
      if (err instanceof StepFailed) return { ...err.outcome, draft: cut ? 'mime' : 'json' };
      throw err;
    } finally {
      // No orphaned drafts: whatever failed, the half-built draft goes; the next attempt starts from scratch.
      if (draftId) await ctx.deleteDraft(`/v1.0/users/${encodeURIComponent(msg.mailbox)}/messages/${encodeURIComponent(draftId)}`);
    }
  }

  private async attach(ctx: Attempt, msg: LargeMessage, base: string, a: AttachmentInfo, index: number): Promise<void> {
    const encoded = a.part.bodyEnd - a.part.bodyStart;
    const source = encoded < IN_MEMORY_ENCODED ? await bufferSource(msg.dataPath, a) : await fileSource(msg.dataPath, a, path.join(this.deps.tmpDir, `${msg.id}.att${index}.bin`));
    try {
      if (source.size < MAX_DIRECT_ATTACHMENT) {
        const bytes = await source.read(0, source.size);
        const json = Buffer.from(JSON.stringify(fileAttachment(a, bytes)), 'utf8');
        await ctx.call('attach', 'POST', `${base}/attachments`, 'application/json', () => json, json.length);
        return;
      }
      const item = Buffer.from(
        JSON.stringify({
          AttachmentItem: { attachmentType: 'file', name: a.name, size: source.size, contentType: a.contentType, isInline: a.isInline, ...(a.contentId ? { contentId: a.contentId } : {}) },
        }),
        'utf8',
      );
      const session = await ctx.call('upload', 'POST', `${base}/attachments/createUploadSession`, 'application/json', () => item, item.length);
      const uploadUrl = session.json?.['uploadUrl'];
      if (typeof uploadUrl !== 'string') throw new StepFailed({ verdict: { kind: 'transient', reason: 'upload-session-without-url' }, status: session.status, message: 'Graph created an upload session but returned no uploadUrl' });
      for (let off = 0; off < source.size; off += UPLOAD_CHUNK) {
        const chunk = await source.read(off, Math.min(UPLOAD_CHUNK, source.size - off));
        await ctx.put(uploadUrl, chunk, off, source.size);
      }
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

/** The large-message route: a draft made from the message minus its big attachments, the attachments uploaded, then sent. */

import { open, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { TokenProvider } from '../auth/token-provider.js';
import { AttemptFailed, GraphAttempt, delivered, type Outcome } from './attempt.js';
import { classifyUploadBudget } from './classify.js';
import type { Body, GraphHttp } from './http.js';
import { fileAttachment, uploadSessionItem, type AttachmentInfo } from '../mime/mime-attachments.js';
import { base64OfRanges } from '../mime/compose.js';
import { partToBuffer, partToFile } from '../mime/part-body.js';
import { chunkRanges, draftPath, messagesPath, uploadsDirectly, UPLOAD_CHUNK } from './planned-requests.js';
import type { LargeWork } from './route-plan.js';
import type { UploadBudget } from './upload-budget.js';
import { readInto } from '../mime/message-file.js';

/** Parts whose encoded form is under this are decoded in memory; bigger ones go to a temp file first. */
const IN_MEMORY_ENCODED = 4 * 1024 * 1024;

export interface RouteOutcome extends Outcome {
  /** How the draft was made, for the log. */
  draft?: 'mime' | 'json';
  attachments?: number;
}

export interface LargeRouteDeps {
  http: GraphHttp;
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
  /** Awaited right before the draft is sent (the request that submits it). */
  beforeSubmit?: (() => Promise<void>) | undefined;
}


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

    const ctx = new GraphAttempt(this.deps.http, this.deps.tokens, msg.mailbox);
    let draftId: string | null = null;
    try {
      const draftBody = (): Body => (draft.kind === 'mime' ? base64OfRanges(msg.prefix, msg.dataPath, draft.cut.kept) : draft.body);
      const created = await ctx.call('draft', { method: 'POST', path: messagesPath(msg.mailbox), contentType: draft.kind === 'mime' ? 'text/plain' : 'application/json', body: draftBody, length: draftBytes, wantJson: true });
      const id = created.json?.['id'];
      if (typeof id !== 'string' || !id) throw new AttemptFailed({ verdict: { kind: 'transient', reason: 'draft-without-id' }, status: created.status, message: 'Graph created a draft but returned no id' });
      draftId = id;
      const base = draftPath(msg.mailbox, id);
      for (const [i, a] of detached.entries()) await this.attach(ctx, msg, base, a, i);
      await msg.beforeSubmit?.();
      const sent = await ctx.call('send', { method: 'POST', path: `${base}/send`, contentType: null, body: () => null, length: 0 });
      draftId = null; // sent drafts leave the Drafts folder by themselves
      return { ...delivered(sent), draft: draft.kind, attachments: detached.length };
    } catch (err) {
      if (!(err instanceof AttemptFailed)) throw err;
      // Sending the draft may have worked: the draft is then on its way to Sent Items, where the look-up
      // will find it, and is not touched. If it was not sent, it stays in Drafts.
      if (err.outcome.verdict.kind === 'transient' && err.outcome.verdict.outcomeUnknown) draftId = null;
      return { ...err.outcome, draft: draft.kind };
    } finally {
      // No orphaned drafts: whatever failed, the half-built draft goes; the next attempt starts from scratch.
      if (draftId) await ctx.delete(draftPath(msg.mailbox, draftId));
    }
  }

  /** One POST or an upload session in chunks, as planned-requests.ts lays out for the decoded size. */
  private async attach(ctx: GraphAttempt, msg: LargeMessage, base: string, a: AttachmentInfo, index: number): Promise<void> {
    const encoded = a.part.bodyEnd - a.part.bodyStart;
    const source = encoded < IN_MEMORY_ENCODED ? await bufferSource(msg.dataPath, a) : await fileSource(msg.dataPath, a, path.join(this.deps.tmpDir, `${msg.id}.att${index}.bin`));
    try {
      if (uploadsDirectly(source.size)) {
        const bytes = await source.read(0, source.size);
        const json = Buffer.from(JSON.stringify(fileAttachment(a, bytes)), 'utf8');
        await ctx.call('attach', { method: 'POST', path: `${base}/attachments`, contentType: 'application/json', body: () => json, length: json.length });
        return;
      }
      const item = Buffer.from(JSON.stringify(uploadSessionItem(a, source.size)), 'utf8');
      const session = await ctx.call('upload', { method: 'POST', path: `${base}/attachments/createUploadSession`, contentType: 'application/json', body: () => item, length: item.length, wantJson: true });
      const uploadUrl = session.json?.['uploadUrl'];
      if (typeof uploadUrl !== 'string') throw new AttemptFailed({ verdict: { kind: 'transient', reason: 'upload-session-without-url' }, status: session.status, message: 'Graph created an upload session but returned no uploadUrl' });
      for (const [first, length] of chunkRanges(source.size)) await ctx.put(uploadUrl, await source.read(first, length), first, source.size);
    } finally {
      await source.close();
    }
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

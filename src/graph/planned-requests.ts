/** The Graph requests a route makes, as data: paths, and how an attachment goes up (one POST, or an upload session in chunks). */

import { base64Length } from '../mime/compose.js';
import { fileAttachment, uploadSessionItem, type AttachmentInfo } from '../mime/mime-attachments.js';

/** Graph: attachments under 3 MB go in one POST; from 3 MB to 150 MB through an upload session. */
export const MAX_DIRECT_ATTACHMENT = 3 * 1024 * 1024;
/** Under 4 MB per PUT and a multiple of 320 KiB, as Graph asks of upload sessions. */
export const UPLOAD_CHUNK = 12 * 320 * 1024;

export interface PlannedRequest {
  step: 'sendMail' | 'createDraft' | 'addAttachment' | 'createUploadSession' | 'uploadChunk' | 'sendDraft';
  method: 'POST' | 'PUT';
  /** Relative to graph.graphUrl; {draft-id} and {uploadUrl} stand for what Graph answers on the way. */
  path: string;
  contentType: string | null;
  bodyBytes: number;
  /** The attachment an attachment step carries. */
  attachment?: string;
  /** Upload chunks: their Content-Range header. */
  contentRange?: string;
}

export const usersPath = (mailbox: string): string => `/v1.0/users/${encodeURIComponent(mailbox)}`;
export const sendMailPath = (mailbox: string): string => `${usersPath(mailbox)}/sendMail`;
export const messagesPath = (mailbox: string): string => `${usersPath(mailbox)}/messages`;
export const draftPath = (mailbox: string, draftId: string): string => `${messagesPath(mailbox)}/${encodeURIComponent(draftId)}`;
/** A draft's path before Graph has named the draft. */
export const plannedDraftPath = (mailbox: string): string => `${messagesPath(mailbox)}/{draft-id}`;

/** Whether an attachment of `bytes` decoded bytes goes in one POST (else through an upload session). */
export function uploadsDirectly(bytes: number): boolean {
  return bytes < MAX_DIRECT_ATTACHMENT;
}

/** The [first byte, length] of each PUT of an upload session. */
export function chunkRanges(bytes: number): [number, number][] {
  const out: [number, number][] = [];
  for (let first = 0; first < bytes; first += UPLOAD_CHUNK) out.push([first, Math.min(UPLOAD_CHUNK, bytes - first)]);
  return out;
}

/** The requests that put one attachment of `bytes` decoded bytes on the draft. */
export function attachmentRequests(mailbox: string, a: AttachmentInfo, bytes: number): PlannedRequest[] {
  const base = plannedDraftPath(mailbox);
  if (uploadsDirectly(bytes)) {
    // contentBytes is the last field and base64 needs no JSON escaping: its length adds up exactly.
    const json = Buffer.byteLength(JSON.stringify(fileAttachment(a, Buffer.alloc(0)))) + base64Length(bytes);
    return [{ step: 'addAttachment', method: 'POST', path: `${base}/attachments`, contentType: 'application/json', bodyBytes: json, attachment: a.name }];
  }
  const session: PlannedRequest = {
    step: 'createUploadSession',
    method: 'POST',
    path: `${base}/attachments/createUploadSession`,
    contentType: 'application/json',
    bodyBytes: Buffer.byteLength(JSON.stringify(uploadSessionItem(a, bytes))),
    attachment: a.name,
  };
  const chunks = chunkRanges(bytes).map(([first, length]): PlannedRequest => ({
    step: 'uploadChunk',
    method: 'PUT',
    path: '{uploadUrl}',
    contentType: 'application/octet-stream',
    bodyBytes: length,
    attachment: a.name,
    contentRange: `bytes ${first}-${first + length - 1}/${bytes}`,
  }));
  return [session, ...chunks];
}

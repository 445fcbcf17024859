/** Large-message path: drafts, small attachments, attachment upload sessions, draft send and delete. */
import { createHash, randomBytes } from 'node:crypto';
import { decodeStrictBase64 } from './base64.js';
import { GraphError, isObject, parseJsonObject } from './call.js';
import type { GraphCall, Reply } from './call.js';
import { mediaType } from './http.js';
import { checkSendAs, decodeMimeBody, internetMessageIdOf, jsonRecipients, jsonSenders, mimeSenders, mimeHeader, mimeRecipients, requireRecipients, sha256, subjectOf, unsupportedMediaType } from './mail.js';
import type { UploadSession } from './state.js';
import type { Attachment, Draft, SentRecord } from './types.js';

const MiB = 1024 * 1024;
export const MAX_DIRECT_ATTACHMENT = 3 * MiB;
export const MIN_UPLOAD_SESSION = 3 * MiB;
export const MAX_UPLOAD_SESSION = 150 * MiB;
/** Graph: each PUT to an upload URL must carry less than 4 MB. */
export const MAX_UPLOAD_CHUNK = 4 * MiB - 1;

/** Exchange ids are base64 with '-'/'_' and '=' padding; keeping the '=' checks that the relay escapes ids. */
function exchangeId(): string {
  return `AAMkAD${randomBytes(41).toString('base64').replace(/\+/g, '-').replace(/\//g, '_')}`;
}

const notFound = (): GraphError => new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');

function requireDraft(call: GraphCall): Draft {
  const draft = call.draftId === undefined ? undefined : call.state.mailboxDrafts(call.upn).get(call.draftId);
  if (!draft) throw notFound();
  return draft;
}

function odataContext(call: GraphCall, suffix: string): string {
  return `${call.state.origin}/v1.0/$metadata#users('${encodeURIComponent(call.upn)}')/${suffix}`;
}

export function createDraft(call: GraphCall): Reply {
  const type = mediaType(call.req.headers['content-type']);
  const draft: Draft = { id: exchangeId(), upn: call.upn, createdAt: new Date(), requestId: call.requestId, contentType: type, attachments: [], internetMessageId: '' };
  let subject: string | undefined;
  if (type === 'text/plain') {
    draft.mime = decodeMimeBody(call.body);
    subject = mimeHeader(draft.mime, 'Subject');
  } else if (type === 'application/json') {
    draft.json = parseJsonObject(call.body);
    const s = draft.json['subject'];
    subject = typeof s === 'string' ? s : undefined;
  } else {
    throw unsupportedMediaType(type);
  }
  draft.internetMessageId = internetMessageIdOf(draft.mime ? { mime: draft.mime } : { json: draft.json ?? {} });
  call.state.mailboxDrafts(call.upn).set(draft.id, draft);
  const changeKey = randomBytes(12).toString('base64');
  const created = draft.createdAt.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    status: 201,
    json: {
      '@odata.context': odataContext(call, 'messages/$entity'),
      '@odata.etag': `W/"${changeKey}"`,
      id: draft.id,
      createdDateTime: created,
      lastModifiedDateTime: created,
      changeKey,
      subject: subject ?? '',
      isDraft: true,
      hasAttachments: false,
      internetMessageId: draft.internetMessageId,
    },
  };
}

function attachmentJson(call: GraphCall, attachment: Attachment): Record<string, unknown> {
  return {
    '@odata.context': odataContext(call, `messages('${call.draftId ?? ''}')/attachments/$entity`),
    '@odata.type': attachment.kind === 'file' ? '#microsoft.graph.fileAttachment' : '#microsoft.graph.itemAttachment',
    id: attachment.id,
    lastModifiedDateTime: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    name: attachment.name,
    contentType: attachment.contentType ?? null,
    size: attachment.size,
    isInline: attachment.isInline,
    ...(attachment.contentId === undefined ? {} : { contentId: attachment.contentId }),
  };
}

const optionalString = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

export function addAttachment(call: GraphCall): Reply {
  const draft = requireDraft(call);
  const json = parseJsonObject(call.body);
  const type = json['@odata.type'];
  const name = json['name'];
  const common = { id: exchangeId(), via: 'direct' as const, isInline: json['isInline'] === true };
  const contentType = optionalString(json['contentType']);
  const contentId = optionalString(json['contentId']);
  let attachment: Attachment;
  if (type === '#microsoft.graph.fileAttachment') {
    if (typeof name !== 'string' || name.length === 0) throw new GraphError(400, 'ErrorInvalidRequest', "The attachment 'name' is required.");
    const contentBytes = json['contentBytes'];
    const bytes = typeof contentBytes === 'string' ? decodeStrictBase64(contentBytes) : undefined;
    if (!bytes) throw new GraphError(400, 'ErrorInvalidRequest', "'contentBytes' must be a non-empty base64 string.");
    if (bytes.length > MAX_DIRECT_ATTACHMENT) {
      throw new GraphError(413, 'RequestEntityTooLarge', 'The attachment is larger than 3 MB; use an upload session.');
    }
    attachment = { ...common, kind: 'file', name, size: bytes.length, bytes, sha256: sha256(bytes),
      ...(contentType === undefined ? {} : { contentType }), ...(contentId === undefined ? {} : { contentId }) };
  } else if (type === '#microsoft.graph.itemAttachment') {
    const item = json['item'];
    if (!isObject(item)) throw new GraphError(400, 'ErrorInvalidRequest', "An itemAttachment needs an 'item'.");
    attachment = { ...common, kind: 'item', name: typeof name === 'string' ? name : '', size: Buffer.byteLength(JSON.stringify(item)), item };
  } else {
    throw new GraphError(400, 'ErrorInvalidRequest', `Unsupported or missing '@odata.type': ${String(type)}.`);
  }
  draft.attachments.push(attachment);
  return { status: 201, json: attachmentJson(call, attachment) };
}

export function createUploadSession(call: GraphCall): Reply {
  const draft = requireDraft(call);
  const json = parseJsonObject(call.body);
  const item = json['AttachmentItem'] ?? json['attachmentItem'];
  if (!isObject(item)) throw new GraphError(400, 'ErrorInvalidRequest', "The 'AttachmentItem' property is required.");
  const attachmentType = item['attachmentType'];
  const name = item['name'];
  const size = item['size'];
  if (typeof attachmentType !== 'string' || attachmentType.toLowerCase() !== 'file') {
    throw new GraphError(400, 'ErrorInvalidRequest', "AttachmentItem.attachmentType must be 'file'.");
  }
  if (typeof name !== 'string' || name.length === 0) throw new GraphError(400, 'ErrorInvalidRequest', 'AttachmentItem.name is required.');
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new GraphError(400, 'ErrorInvalidRequest', 'AttachmentItem.size must be a non-negative integer.');
  }
  if (size < MIN_UPLOAD_SESSION) {
    throw new GraphError(400, 'ErrorAttachmentSizeShouldNotBeLessThanMinimumSize', 'Attachment size must be greater than the minimum size.');
  }
  if (size > MAX_UPLOAD_SESSION) {
    throw new GraphError(400, 'ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize', 'Attachment size must be smaller than the maximum size of 150 MB.');
  }
  const contentType = optionalString(item['contentType']);
  const contentId = optionalString(item['contentId']);
  const session: UploadSession = {
    id: exchangeId(),
    authToken: randomBytes(32).toString('base64url'),
    upn: call.upn,
    draftId: draft.id,
    name,
    size,
    isInline: item['isInline'] === true,
    next: 0,
    chunks: [],
    hash: createHash('sha256'),
    expirationDateTime: new Date(Date.now() + 6 * 3600_000).toISOString(),
    ...(contentType === undefined ? {} : { contentType }),
    ...(contentId === undefined ? {} : { contentId }),
  };
  call.state.uploads.set(session.id, session);
  // Shaped like the real Outlook upload URL (quotes, parentheses, '=' in ids) so only verbatim use works.
  const uploadUrl = `${call.state.origin}/_upload/api/v2.0/Users('${encodeURIComponent(call.upn)}')/Messages('${draft.id}')` +
    `/AttachmentSessions('${session.id}')?authtoken=${session.authToken}`;
  return {
    status: 201,
    json: {
      '@odata.context': `${call.state.origin}/v1.0/$metadata#microsoft.graph.uploadSession`,
      uploadUrl,
      expirationDateTime: session.expirationDateTime,
      nextExpectedRanges: ['0-'],
    },
  };
}

export function uploadChunk(call: GraphCall): Reply {
  const session = call.session;
  if (!session) throw notFound();
  const lengthHeader = call.req.headers['content-length'];
  if (lengthHeader === undefined) throw new GraphError(411, 'LengthRequired', 'Content-Length is required on upload requests.');
  const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(call.req.headers['content-range'] ?? '');
  if (!range) throw new GraphError(400, 'InvalidContentRange', "A 'Content-Range: bytes first-last/total' header is required.");
  const [first, last, total] = [Number(range[1]), Number(range[2]), Number(range[3])];
  if (total !== session.size) {
    throw new GraphError(400, 'InvalidContentRange', `The total size ${total} does not match the announced attachment size ${session.size}.`);
  }
  if (last < first || last >= total) throw new GraphError(400, 'InvalidContentRange', `Invalid range ${first}-${last}/${total}.`);
  if (first !== session.next) {
    throw new GraphError(416, 'ErrorInvalidRange', `The range ${first}-${last} does not start at the next expected byte ${session.next}; nextExpectedRanges: ["${session.next}-"].`);
  }
  if (last - first + 1 !== Number(lengthHeader) || call.body.length !== Number(lengthHeader)) {
    throw new GraphError(400, 'InvalidContentRange', `The range ${first}-${last} does not match Content-Length ${lengthHeader}.`);
  }
  session.chunks.push(call.body);
  session.hash.update(call.body);
  session.next = last + 1;
  if (session.next < session.size) {
    return { status: 200, json: { expirationDateTime: session.expirationDateTime, nextExpectedRanges: [`${session.next}-`] } };
  }

  call.state.uploads.delete(session.id);
  const draft = call.state.mailboxDrafts(session.upn).get(session.draftId);
  if (!draft) throw notFound();
  const bytes = Buffer.concat(session.chunks);
  session.chunks = [];
  const attachment: Attachment = {
    id: exchangeId(),
    kind: 'file',
    via: 'uploadSession',
    name: session.name,
    size: bytes.length,
    isInline: session.isInline,
    bytes,
    sha256: session.hash.digest('hex'),
    ...(session.contentType === undefined ? {} : { contentType: session.contentType }),
    ...(session.contentId === undefined ? {} : { contentId: session.contentId }),
  };
  draft.attachments.push(attachment);
  const location = `${call.state.origin}/v1.0/users('${encodeURIComponent(session.upn)}')/messages('${draft.id}')/attachments('${attachment.id}')`;
  return { status: 201, headers: { Location: location } };
}

export function cancelUpload(call: GraphCall): Reply {
  if (!call.session) throw notFound();
  call.state.uploads.delete(call.session.id);
  return { status: 204 };
}

export function sendDraft(call: GraphCall): Reply {
  const draft = requireDraft(call);
  const recipients = draft.mime ? mimeRecipients(draft.mime) : jsonRecipients(draft.json ?? {});
  requireRecipients(recipients);
  checkSendAs(call.state, call.upn, draft.mime ? mimeSenders(draft.mime) : jsonSenders(draft.json ?? {}));
  const content = draft.mime ?? Buffer.from(JSON.stringify(draft.json ?? {}));
  const record: SentRecord = {
    via: 'draft',
    upn: call.upn,
    requestId: call.requestId,
    contentType: draft.contentType,
    at: new Date(),
    headers: call.req.headers,
    recipients,
    size: content.length,
    sha256: sha256(content),
    draftId: draft.id,
    attachments: draft.attachments,
    internetMessageId: draft.internetMessageId,
    savedToSentItems: true,
    ...(draft.mime ? { mime: draft.mime } : { json: draft.json }),
    ...(call.clientRequestId === undefined ? {} : { clientRequestId: call.clientRequestId }),
    ...(call.tenantId === undefined ? {} : { tenantId: call.tenantId }),
  };
  call.state.mailboxDrafts(call.upn).delete(draft.id);
  call.state.dropUploadsOf(draft.id);
  call.state.recordSent(record, subjectOf(draft.mime ? { mime: draft.mime } : { json: draft.json ?? {} }));
  return { status: 202 };
}

export function deleteDraft(call: GraphCall): Reply {
  const draft = requireDraft(call);
  call.state.mailboxDrafts(call.upn).delete(draft.id);
  call.state.dropUploadsOf(draft.id);
  return { status: 204 };
}

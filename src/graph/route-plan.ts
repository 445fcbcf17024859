/** The one place that decides how a spooled message goes through Graph: its route, the permission, the requests, and why. */

import type { SentItemsMode } from '../config/config.js';
import type { classifyUnsendable } from './classify.js';
import { base64Length } from '../mime/compose.js';
import type { MessageData } from '../mime/message-file.js';
import { readMessageParts } from '../mime/inline-parts.js';
import { buildJsonMessage } from './json-message.js';
import { buildJsonSendMail } from './json-sendmail.js';
import { isCalendarInvite, type AttachmentInfo, type MessageParts } from '../mime/mime-attachments.js';
import { planCut, type Cut } from './mime-cut.js';
import { scanMime, type MimePart } from '../mime/mime-tree.js';
import { attachmentRequests, messagesPath, plannedDraftPath, sendMailPath } from './planned-requests.js';
import type { PlannedRequest } from './planned-requests.js';
import { MimeScanError } from '../errors.js';

export type { PlannedRequest } from './planned-requests.js';

export type RouteName = 'mime' | 'json' | 'large';
export type Permission = 'Mail.Send' | 'Mail.ReadWrite';
/** Why a mailbox that discards Sent Items still gets Graph's copy there: the message cannot go as JSON sendMail. */
export type SentItemsKept = 'calendar' | 'too-big-for-json' | 'unreadable-mime';
export type UnsendableReason = Parameters<typeof classifyUnsendable>[0];

/** An attachment the large route uploads to its draft; `bytes` is null where the plan did not measure it. */
export interface PlannedAttachment {
  name: string;
  contentType: string;
  isInline: boolean;
  contentId: string | null;
  bytes: number | null;
}

/** The decision, as plain data: what capture files show and what graph mode does. */
export interface RoutePlan {
  route: RouteName;
  /** Graph application permissions the route needs; none when it is refused. */
  permission: Permission[];
  reason: string;
  /** In order; attachments the plan did not measure are left out (graph mode learns their size while uploading). */
  requests: PlannedRequest[];
  /** Large route: how the draft is made. */
  draft?: 'mime' | 'json';
  attachments?: PlannedAttachment[];
  sentItemsKept?: SentItemsKept;
  /** No route can carry the message: the permanent verdict's reason, and what to tell the sender. */
  refused?: { reason: UnsendableReason; message: string };
}

/** What the chosen route needs to run, besides the plan: request bodies and byte ranges. */
export type RouteWork = { route: 'mime' } | { route: 'json'; body: Buffer } | { route: 'large'; large: LargeWork } | { route: 'refused' };
export interface LargeWork {
  draft: { kind: 'mime'; cut: Cut; bytes: number } | { kind: 'json'; body: Buffer };
  /** Taken out of the MIME (or all of them, for a JSON draft): uploaded one by one, in this order. */
  attachments: AttachmentInfo[];
}

export interface PlannedRoute {
  plan: RoutePlan;
  work: RouteWork;
}

export interface RouteInput {
  mailbox: string;
  bcc: readonly string[];
  /** The Bcc: header for envelope-only recipients, in front of the MIME on every MIME route. */
  prefix: Buffer;
  data: MessageData;
  sentItems: SentItemsMode;
}

export interface RouteLimits {
  maxRequestBytes: number;
  /** delivery.largeMessages: without it, a message over one request cannot be carried. */
  largeMessages: boolean;
  /**
   * Measures an attachment's decoded size so its requests can be listed (capture mode). Graph mode passes
   * none: the large route learns each size as it decodes the attachment for its upload, where measuring
   * first would decode every attachment twice.
   */
  measure?: (file: string, part: MimePart) => Promise<number>;
}

const KEPT: Record<SentItemsKept, string> = {
  calendar: 'sentItems is discard, but the message carries a calendar invitation, which JSON sendMail would turn into a plain .ics attachment: sent as MIME, Graph keeps its copy in Sent Items',
  'too-big-for-json': 'sentItems is discard, but the message is too big for JSON sendMail: Graph keeps its copy in Sent Items',
  'unreadable-mime': 'sentItems is discard, but the message cannot be split into MIME parts for JSON sendMail: Graph keeps its copy in Sent Items',
};

/** The log line and plan note for a mailbox whose discard setting this message cannot honour. */
export function sentItemsKeptMessage(why: SentItemsKept): string {
  return KEPT[why];
}

/**
 * JSON sendMail when the mailbox discards Sent Items and the message fits as JSON (and is no calendar
 * invitation); else MIME sendMail when prefix + message fit one request as base64; else the large route
 * (or a refusal when delivery.largeMessages is off, or when no draft can carry the message).
 */
export async function planRoute(msg: RouteInput, limits: RouteLimits): Promise<PlannedRoute> {
  const reader = new MessageReader(msg.data.file, msg.data.size);
  let kept: SentItemsKept | undefined;
  if (msg.sentItems === 'discard') {
    const json = msg.data.size <= limits.maxRequestBytes ? await planJson(msg, limits, reader) : 'too-big-for-json';
    if (typeof json !== 'string') return json;
    kept = json;
  }
  const mimeBytes = base64Length(msg.prefix.length + msg.data.size);
  let planned: PlannedRoute;
  if (mimeBytes <= limits.maxRequestBytes) {
    const requests: PlannedRequest[] = [{ step: 'sendMail', method: 'POST', path: sendMailPath(msg.mailbox), contentType: 'text/plain', bodyBytes: mimeBytes }];
    planned = { plan: { route: 'mime', permission: ['Mail.Send'], reason: `fits one MIME sendMail request (${mimeBytes} of ${limits.maxRequestBytes} bytes as base64)`, requests }, work: { route: 'mime' } };
  } else if (!limits.largeMessages) {
    planned = refused('mime', 'message-too-big', `the message (${msg.data.size} bytes) exceeds one Graph request and delivery.largeMessages is off`);
  } else {
    planned = await planLarge(msg, limits, reader, mimeBytes);
  }
  if (kept) {
    planned.plan.sentItemsKept = kept;
    planned.plan.reason = `${KEPT[kept]}; ${planned.plan.reason}`;
  }
  return planned;
}

/** The JSON sendMail plan, or why the message cannot go that way. */
async function planJson(msg: RouteInput, limits: RouteLimits, reader: MessageReader): Promise<PlannedRoute | SentItemsKept> {
  const root = await reader.root();
  if (root instanceof MimeScanError) return 'unreadable-mime';
  const parts = await reader.parts(root);
  // Graph builds a meeting request only from MIME: as JSON the invitation would arrive as a plain .ics file.
  if (parts.attachments.some((a) => isCalendarInvite(a.part))) return 'calendar';
  const body = await buildJsonSendMail(msg.data.file, root, parts, msg.bcc, limits.maxRequestBytes);
  if (!body) return 'too-big-for-json';
  const requests: PlannedRequest[] = [{ step: 'sendMail', method: 'POST', path: sendMailPath(msg.mailbox), contentType: 'application/json', bodyBytes: body.length }];
  return { plan: { route: 'json', permission: ['Mail.Send'], reason: 'sentItems is discard: JSON sendMail with saveToSentItems false', requests }, work: { route: 'json', body } };
}

/**
 * A draft from the MIME less its biggest attachments (a calendar invitation is never cut out), or, when no
 * cut fits, a JSON draft with every attachment uploaded. An invitation that only a JSON draft could carry is
 * refused: Graph would deliver it as a plain .ics attachment, which looks sent but invites nobody.
 */
async function planLarge(msg: RouteInput, limits: RouteLimits, reader: MessageReader, mimeBytes: number): Promise<PlannedRoute> {
  const { file, size } = msg.data;
  const max = limits.maxRequestBytes;
  const root = await reader.root();
  if (root instanceof MimeScanError) return refused('large', 'invalid-mime', `cannot split the message into parts: ${root.message}`);
  const parts = await reader.parts(root);
  const cut = planCut(size, msg.prefix.length, parts.attachments, max);
  let draft: LargeWork['draft'];
  if (cut) {
    draft = { kind: 'mime', cut, bytes: base64Length(msg.prefix.length + cut.keptBytes) };
  } else {
    const invite = parts.attachments.find((a) => isCalendarInvite(a.part));
    if (invite) {
      return refused('large', 'message-too-big', `the message carries a calendar invitation (${invite.name}, text/calendar; method=${invite.part.params['method']}) and is too big to send as MIME even with its other attachments cut out; as a JSON draft the invitation would arrive as a plain .ics attachment, so the message is not sent`);
    }
    const body = Buffer.from(JSON.stringify(await buildJsonMessage(file, root, parts, { extraBcc: msg.bcc, internetMessageId: true })), 'utf8');
    if (body.length > max) return refused('large', 'message-too-big', `the message body alone (${body.length} bytes as JSON) exceeds one Graph request (${max} bytes)`);
    draft = { kind: 'json', body };
  }
  const detached = cut ? cut.detached : parts.attachments;
  const attachments: PlannedAttachment[] = [];
  for (const a of detached) attachments.push({ name: a.name, contentType: a.contentType, isInline: a.isInline, contentId: a.contentId, bytes: limits.measure ? await limits.measure(file, a.part) : null });
  const requests: PlannedRequest[] = [
    draft.kind === 'mime'
      ? { step: 'createDraft', method: 'POST', path: messagesPath(msg.mailbox), contentType: 'text/plain', bodyBytes: draft.bytes }
      : { step: 'createDraft', method: 'POST', path: messagesPath(msg.mailbox), contentType: 'application/json', bodyBytes: draft.body.length },
    ...detached.flatMap((a, i) => (attachments[i]!.bytes === null ? [] : attachmentRequests(msg.mailbox, a, attachments[i]!.bytes!))),
    { step: 'sendDraft', method: 'POST', path: `${plannedDraftPath(msg.mailbox)}/send`, contentType: null, bodyBytes: 0 },
  ];
  const over = `over graph.maxRequestBytes as one MIME sendMail (${mimeBytes} > ${max} bytes as base64)`;
  const how = cut ? `a draft from the MIME less ${detached.length} attachment(s), each uploaded to it, then sent` : 'no cut of attachments makes the MIME fit: a JSON draft, every attachment uploaded to it, then sent';
  const plan: RoutePlan = { route: 'large', permission: ['Mail.Send', 'Mail.ReadWrite'], reason: `${over}: ${how}`, requests, draft: draft.kind, attachments };
  return { plan, work: { route: 'large', large: { draft, attachments: detached } } };
}

function refused(route: RouteName, reason: UnsendableReason, message: string): PlannedRoute {
  return { plan: { route, permission: [], reason: message, requests: [], refused: { reason, message } }, work: { route: 'refused' } };
}

/** The message's MIME tree and parts, read once however many routes look at them. */
class MessageReader {
  private tree: Promise<MimePart | MimeScanError> | null = null;
  private described: Promise<MessageParts> | null = null;

  constructor(
    private readonly file: string,
    private readonly size: number,
  ) {}

  root(): Promise<MimePart | MimeScanError> {
    this.tree ??= scanMime(this.file, this.size).catch((err: unknown) => {
      if (err instanceof MimeScanError) return err;
      throw err;
    });
    return this.tree;
  }

  parts(root: MimePart): Promise<MessageParts> {
    this.described ??= readMessageParts(this.file, root);
    return this.described;
  }
}

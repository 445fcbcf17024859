/**
 * `smtp-graph-relay test-send --to ADDRESS [--from MAILBOX]`: one message through the configured route, each
 * step printed with its result and request-id, and the fix for each failure an administrator meets first.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { accountOfMailbox } from '../app/accounts.js';
import { permissionSummary } from '../app/permissions.js';
import { MsalTokenProvider } from '../auth/token-provider.js';
import { tokenRoles } from '../auth/token-roles.js';
import { accountGraphConfig, graphAccounts } from '../config/accounts.js';
import { maxRawForRequest, type GraphConfig, type RelayConfig } from '../config/config.js';
import { TokenError } from '../errors.js';
import { GraphAdapter, type SendResult } from '../graph/adapter.js';
import { GraphHttp } from '../graph/http.js';
import { rfc5322Date } from '../mime/received.js';
import { Outbound } from '../net/outbound.js';
import { createLogger } from '../observability/logger.js';

/** What to change for the Graph answers a first send meets; by Graph error code. */
const GRAPH_FIXES: Record<string, string> = {
  ErrorAccessDenied: 'the app may not send as this mailbox: with RBAC for Applications, check the scope (Test-ServicePrincipalAuthorization -Identity <app id> -Resource <mailbox>); with an application access policy, Test-ApplicationAccessPolicy',
  ErrorSendAsDenied: 'the From is not the mailbox nor an address it may send as: grant Send As in Exchange, or leave mailboxes.rewriteFrom at mailbox',
  ErrorInvalidUser: 'no such mailbox in this tenant: check --from, mailboxes.map and mailboxes.fallback',
  ResourceNotFound: 'no such mailbox in this tenant: check --from, mailboxes.map and mailboxes.fallback',
  MailboxNotEnabledForRESTAPI: 'the mailbox is not in Exchange Online (on-premises, unlicensed, or inactive): use a licensed cloud mailbox or a shared mailbox',
  ErrorInvalidRecipients: 'Graph did not take the recipient: check --to',
  InvalidAuthenticationToken: 'Graph did not take the token: check graph.cloud (the token must be for the same cloud as graph.graphUrl)',
  Authorization_RequestDenied: 'the app has no permission to send: grant Mail.Send (Entra ID, or RBAC for Applications in Exchange)',
};

export interface TestSendOptions {
  to: string;
  from?: string;
  /** The Graph account to send through; default: the one the mailbox's domain (or the default account) gives. */
  account?: string;
}

/** The account's settings merged with graph:'s network settings, or a line saying why there is none. */
export function accountConfig(cfg: RelayConfig, name: string | null): GraphConfig | string {
  const account = graphAccounts(cfg).find((a) => a.name === name);
  if (account) return accountGraphConfig(cfg.graph, account);
  return name === null ? 'no Graph account for this mailbox: give --account NAME' : `no Graph account "${name}" (accounts: ${graphAccounts(cfg).map((a) => a.name).join(', ')})`;
}

/** Gets a token, prints it with its roles and what they allow; the provider, or null after printing why not. */
export async function tokenStep(cfg: RelayConfig, g: GraphConfig, net: Outbound, out: (line: string) => void): Promise<MsalTokenProvider | null> {
  const tokens = new MsalTokenProvider(g, createLogger('silent'), {}, process.env, net);
  let token: string;
  try {
    token = await tokens.getToken();
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    out(`token ✗ ${err.message}`);
    if (err.hint) out(`  fix: ${err.hint}`);
    return null;
  }
  const roles = tokenRoles(token);
  out(`token ✓ (account ${g.name}, ${g.authorityHost.replace(/^https:\/\//, '')}, credential ${tokens.credential}; roles: ${roles ? roles.join(', ') : 'none — with RBAC for Applications the grant is in Exchange, and the send below tells'})`);
  const p = permissionSummary(g.name, roles, { largeMessages: cfg.delivery.largeMessages, oneRequest: maxRawForRequest(g.maxRequestBytes), checkPermissions: g.checkPermissions });
  out(`permissions ${p.level === 'info' ? '✓' : '✗'} ${p.text}`);
  return tokens;
}

/** Prints the steps; resolves with the exit status (0 when Graph took the message). */
export async function testSend(cfg: RelayConfig, opts: TestSendOptions, out: (line: string) => void): Promise<number> {
  const mailbox = opts.from ?? cfg.mailboxes.fallback ?? Object.values(cfg.mailboxes.map)[0];
  if (!mailbox) {
    out('mailbox ✗ none to send as: give --from MAILBOX (or set mailboxes.fallback)');
    return 2;
  }
  const log = createLogger('silent');
  const g = accountConfig(cfg, opts.account ?? accountOfMailbox(cfg, mailbox));
  if (typeof g === 'string') {
    out(`account ✗ ${g}`);
    return 2;
  }
  const net = Outbound.forGraph(g, 1);
  const tokens = await tokenStep(cfg, g, net, out);
  if (!tokens) {
    await net.close();
    return 1;
  }
  out(`mailbox ${mailbox}${opts.from ? '' : ' (from the configuration; --from names another)'}`);
  const dir = await mkdtemp(path.join(tmpdir(), 'relay-test-send-'));
  const http = new GraphHttp(g.graphUrl, net);
  try {
    const file = path.join(dir, 'message.eml');
    const bytes = testMessage(mailbox, opts.to, cfg.hostname);
    await writeFile(file, bytes);
    const graph = new GraphAdapter(http, tokens, { maxRequestBytes: g.maxRequestBytes, largeMessages: false, uploadBudgetBytes: g.uploadBudgetBytes, uploadBudgetWindowMs: g.uploadBudgetWindowMs, tmpDir: dir, account: g.name }, log);
    const r = await graph.send({ id: 'test-send', mailbox, bcc: [], sentItems: cfg.delivery.sentItems, data: { file, size: bytes.length, bytes } });
    return report(r, mailbox, out);
  } finally {
    await net.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function report(r: SendResult, mailbox: string, out: (line: string) => void): number {
  const id = r.requestId ? ` (request-id ${r.requestId})` : '';
  const what = `${r.route === 'json' ? 'JSON' : 'MIME'} sendMail`;
  if (r.verdict.kind === 'delivered') {
    out(`${what} ${r.status ?? ''} ✓${id}`.replace('  ', ' '));
    out(`mailbox ✓ Graph took the message for ${mailbox}; Exchange delivers it (check the recipient's inbox, or the mailbox's Sent Items)`);
    return 0;
  }
  out(`${what} ${[r.status, r.code].filter(Boolean).join(' ')} ✗${id}: ${r.message ?? r.verdict.reason}`);
  const fix = (r.code && GRAPH_FIXES[r.code]) || (r.status === 403 ? GRAPH_FIXES['ErrorAccessDenied'] : undefined);
  if (fix) out(`  fix: ${fix}`);
  return 1;
}

function testMessage(from: string, to: string, hostname: string): Buffer {
  const now = Date.now();
  return Buffer.from(
    [
      `From: smtp-graph-relay <${from}>`,
      `To: ${to}`,
      `Subject: smtp-graph-relay test-send from ${hostname}`,
      `Date: ${rfc5322Date(now)}`,
      `Message-ID: <${randomUUID()}@${hostname}>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      `This message was sent by "smtp-graph-relay test-send" on ${hostname} at ${new Date(now).toISOString()},`,
      `through Microsoft Graph as ${from}. If it arrived, the relay's credentials and permissions work.`,
      '',
    ].join('\r\n'),
    'utf8',
  );
}

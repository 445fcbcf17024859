/**
 * The status page in a real browser (Debian's chromium driven by playwright-core) against the built relay and
 * the Graph emulator: log in, send mail, find it, read its story and Exchange's trace, retry a dead letter,
 * see the device; the command line gives the same answers and the same .eml. Screenshots of each view go to
 * docs/ when RELAY_UPDATE_SCREENSHOTS=1 (otherwise to a temporary folder), and are checked to be pictures.
 */

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/config/password-hash.js';
import { TRACE_ROLE } from '../../src/graph/message-trace.js';
import { startEmulator, type Emulator } from '../emulator/emulator.js';
import { startGraphRelay } from '../helpers/graph-relay.js';
import { CLI, REPO, type RelayProcess } from '../helpers/relay-process.js';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const TOKEN = 'status-page-test-token-0123456789abcdef';
const SHOTS = process.env.RELAY_UPDATE_SCREENSHOTS === '1' ? path.join(REPO, 'docs') : mkdtempSync(path.join(tmpdir(), 'status-shots-'));
const run = promisify(execFile);

// One relay for the whole file: the tests follow one administrator's visit, view by view.
const bed = { emu: undefined as unknown as Emulator };
let relay: RelayProcess;
let base: string;
let browser: Browser;
let page: Page;

async function send(from: string, to: string, subject: string, messageId: string): Promise<string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, secure: false, ignoreTLS: true });
  try {
    const info = await t.sendMail({ from, to, subject, text: `the scan from the third floor (${subject})`, messageId });
    return /queued as (\S+)/.exec(info.response)![1]!;
  } finally {
    t.close();
  }
}

async function shot(name: string): Promise<void> {
  const file = path.join(SHOTS, `status-page-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  // A PNG, and not an empty one.
  expect(readFileSync(file).subarray(1, 4).toString()).toBe('PNG');
  expect(statSync(file).size).toBeGreaterThan(5000);
}

async function cli(...args: string[]): Promise<string> {
  return (await run(process.execPath, [CLI, ...args, '--config', relay.configPath], { encoding: 'utf8' })).stdout;
}

const api = async (p: string): Promise<unknown> => (await fetch(`${base}${p}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();

describe('status page in a browser', () => {
  let goodQid: string;
  let deadQid: string;

  beforeAll(async () => {
    // Fails, not skips, where chromium is missing: .ci/run installs it.
    expect(existsSync(CHROMIUM), `${CHROMIUM} (Debian's chromium package) is needed`).toBe(true);
    const passwordHash = await hashPassword('third floor', { N: 1024, r: 8, p: 1 });
    bed.emu = await startEmulator({ roles: ['Mail.Send', 'Mail.ReadWrite', TRACE_ROLE] });
    relay = await startGraphRelay(bed.emu, { admin: { host: '127.0.0.1', port: 0, auth: { users: [{ username: 'alice', passwordHash }] } }, history: { storeSubjects: true } }, { env: { RELAY_ADMIN_TOKEN: TOKEN } });
    base = `http://127.0.0.1:${Number((await relay.waitForLog((l) => l.event === 'admin-listening')).port)}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('pageerror', (err) => {
      throw err;
    });
  });
  afterAll(async () => {
    await browser?.close();
    expect(await relay.stop()).toBe(0);
    await bed.emu.close();
    expect(relay.logs.filter((l) => !l.raw && typeof l.event !== 'string')).toEqual([]);
  });

  it('asks for a login, and logs in with an admin user', async () => {
    await page.goto(`${base}/ui/`);
    await page.waitForSelector('#view-login:not([hidden])');
    await page.fill('input[name=username]', 'alice');
    await page.fill('input[name=password]', 'wrong');
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#notice.error:not([hidden])');
    expect(await page.textContent('#notice')).toMatch(/wrong user name or password/);
    await shot('login');
    await page.fill('input[name=username]', 'alice');
    await page.fill('input[name=password]', 'third floor');
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#view-overview:not([hidden]) #cards .card');
    expect(await page.textContent('#user')).toBe('alice');
    await relay.waitForLog((l) => l.event === 'admin-login' && l.who === 'alice');
  });

  it('finds a delivered message by recipient and Message-ID, tells its story, and shows what Exchange did', async () => {
    // A permanent refusal for the first message from this mailbox: it goes to the dead-letter folder.
    bed.emu.script('floor3@contoso.example', [{ status: 400, code: 'ErrorInvalidRecipients', message: 'At least one recipient is not valid.' }]);
    deadQid = await send('floor3@contoso.example', 'nobody@contoso.example', 'scan 1', '<scan-1@floor3.printers>');
    await relay.waitForLog((l) => l.event === 'dead-lettered' && l.qid === deadQid);
    goodQid = await send('floor3@contoso.example', 'alice@contoso.example', 'scan 2', '<scan-2@floor3.printers>');
    await relay.waitForLog((l) => l.event === 'delivered' && l.qid === goodQid);

    await page.click('nav a[data-view=messages]');
    await page.fill('#search-form input[name=recipient]', 'alice@contoso.example');
    await page.click('#search-form button[type=submit]');
    await page.waitForSelector(`#results tr[data-qid="${goodQid}"]`);
    expect(await page.locator('#results tbody tr[data-qid]').count()).toBe(1);
    await page.fill('#search-form input[name=recipient]', '');
    await page.fill('#search-form input[name=messageId]', 'scan-2@floor3.printers');
    await page.click('#search-form button[type=submit]');
    await page.click(`#results tr[data-qid="${goodQid}"]`);
    await page.waitForSelector('#story:not([hidden]) ol.timeline li.ok');
    const story = (await page.textContent('#story'))!;
    expect(story).toContain('scan 2');
    expect(story).toContain('<scan-2@floor3.printers>');
    expect(story).toMatch(/delivered · attempt 1 · HTTP 202/);
    const requestId = String(relay.logs.find((l) => l.event === 'delivered' && l.qid === goodQid)!.requestId);
    expect(story).toContain(`request-id ${requestId}`);
    // Exchange's own verdict, asked only now.
    const before = bed.emu.traceRequests;
    await page.click('#trace button');
    await page.waitForSelector('#trace table');
    expect(await page.textContent('#trace table')).toMatch(/alice@contoso\.example\s*delivered/);
    expect(bed.emu.traceRequests).toBe(before + 1);
    await shot('message');
  });

  it('the command line gives the same answers as the page, and the same .eml', async () => {
    const fromPage = await api('/ui/api/search?sender=floor3@contoso.example');
    const fromCli = JSON.parse(await cli('history', 'search', '--sender', 'floor3@contoso.example', '--json')) as unknown;
    expect(fromCli).toEqual(fromPage);
    expect((fromCli as { qid: string }[]).map((m) => m.qid)).toEqual([goodQid, deadQid]);
    expect(await cli('history', 'show', deadQid)).toMatch(/dead-lettered\s+attempt 1\s+HTTP 400\s+ErrorInvalidRecipients/);
    const pageEml = Buffer.from(await (await fetch(`${base}/ui/api/message/${deadQid}/eml`, { headers: { authorization: `Bearer ${TOKEN}` } })).arrayBuffer());
    const out = path.join(mkdtempSync(path.join(tmpdir(), 'eml-')), `${deadQid}.eml`);
    expect(await cli('queue', 'export', deadQid, '--out', out)).toContain('dead letter');
    expect(readFileSync(out)).toEqual(pageEml);
    expect(pageEml.toString()).toMatch(/^Received: from /);
    expect(pageEml.toString()).toContain('Message-ID: <scan-1@floor3.printers>');
    expect(pageEml.toString()).not.toContain('#envelope');
  });

  it('lists the dead letter, and its Retry puts it back in the queue, logged with who did it', async () => {
    await page.click('nav a[data-view=dead]');
    await page.waitForSelector(`#dead tr[data-qid="${deadQid}"]`);
    expect(await page.textContent(`#dead tr[data-qid="${deadQid}"]`)).toContain('ErrorInvalidRecipients');
    await shot('dead-letters');
    await page.click(`#dead tr[data-qid="${deadQid}"] button.retry`);
    await relay.waitForLog((l) => l.event === 'delivered' && l.qid === deadQid);
    expect(await relay.waitForLog((l) => l.event === 'admin-action')).toMatchObject({ who: 'alice', action: 'requeue', qid: deadQid, ok: true });
    await page.waitForSelector('#notice:not([hidden])');
    expect(await page.textContent('#notice')).toContain('back in the queue');
    await page.waitForSelector(`#dead tr[data-qid="${deadQid}"]`, { state: 'detached' });
    const story = (await api(`/ui/api/message/${deadQid}`)) as { state: string; events: { kind: string; by?: string }[] };
    expect(story.state).toBe('delivered');
    expect(story.events.map((e) => [e.kind, e.by ?? null])).toEqual([
      ['dead-lettered', null],
      ['requeued', 'alice'],
      ['delivered', null],
    ]);
  });

  it('shows the device, its messages today and its last error; the overview fits a phone', async () => {
    await page.click('nav a[data-view=devices]');
    await page.waitForSelector('#devices tr[data-device="address:127.0.0.1"]');
    const row = (await page.textContent('#devices tr[data-device="address:127.0.0.1"]'))!;
    expect(row).toContain('ErrorInvalidRecipients');
    const devices = (await api('/ui/api/devices')) as { devices: { id: string; today: number }[] };
    expect(devices.devices.find((d) => d.id === 'address:127.0.0.1')?.today).toBe(2);
    await shot('devices');
    await page.click('nav a[data-view=overview]');
    await page.waitForSelector('#mailboxes tbody tr');
    await shot('overview');
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
    await phone.context().addCookies(await page.context().cookies());
    await phone.goto(`${base}/ui/#overview`);
    await phone.waitForSelector('#cards .card');
    // Nothing wider than the screen but the tables, which scroll inside their own box.
    expect(await phone.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await phone.screenshot({ path: path.join(SHOTS, 'status-page-phone.png'), fullPage: true });
    await phone.close();
  });
});

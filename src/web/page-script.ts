/**
 * The status page's script, served as /ui/app.js (script-src 'self'). Data goes into the page only as text
 * (textContent, never innerHTML), so nothing a device or a sender wrote can run here. Views poll every 5 s.
 */

export const PAGE_SCRIPT = String.raw`'use strict';
(() => {
  const $ = (s) => document.querySelector(s);
  let csrf = null;
  let view = 'overview';
  let openQid = null;
  let timer = null;

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of kids.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
    return el;
  }
  const when = (ms) => (ms ? new Date(ms).toLocaleString() : '');
  const ago = (s) => (s < 90 ? Math.round(s) + ' s' : s < 5400 ? Math.round(s / 60) + ' min' : s < 172800 ? Math.round(s / 3600) + ' h' : Math.round(s / 86400) + ' d');
  const span = (ms) => (ms ? ago(ms / 1000) : '');
  const state = (s) => h('span', { class: 'state ' + s }, s);

  function notice(text, isError) {
    const n = $('#notice');
    n.textContent = text || '';
    n.hidden = !text;
    n.className = isError ? 'error' : '';
  }

  async function api(path, opts) {
    const o = Object.assign({ headers: {} }, opts || {});
    if (o.method === 'POST') o.headers['x-csrf-token'] = csrf || '';
    const res = await fetch(path, o);
    if (res.status === 401) { showLogin(); throw new Error('log in first'); }
    const body = res.headers.get('content-type')?.includes('json') ? await res.json() : null;
    if (!res.ok) throw new Error((body && (body.error || body.message)) || res.statusText);
    return body;
  }

  function show(name) {
    view = name;
    for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== 'view-' + name;
    for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.view === name);
  }

  function showLogin() {
    $('#nav').hidden = true;
    $('#logout').hidden = true;
    show('login');
  }

  function fill(table, rows) {
    const body = $(table + ' tbody');
    body.replaceChildren(...rows);
    if (rows.length === 0) body.append(h('tr', {}, h('td', { colspan: $(table + ' thead tr').children.length, class: 'hint' }, 'Nothing here.')));
  }

  async function overview() {
    const s = await api('/ui/api/summary');
    const card = (n, l, cls) => h('div', { class: 'card ' + (cls || '') }, h('div', { class: 'n' }, n), h('div', { class: 'l' }, l));
    $('#cards').replaceChildren(
      card(s.queued, 'queued'), card(ago(s.oldestQueuedSeconds), 'oldest queued', s.oldestQueuedSeconds > 1800 ? 'warn' : ''),
      card(s.inFlight, 'in flight'), card(s.dead, 'dead letters', s.dead > 0 ? 'bad' : ''),
      card(s.devices, 'devices'), card(s.devicesSilent, 'silent devices', s.devicesSilent > 0 ? 'warn' : ''));
    $('#dead-count').textContent = s.dead || '';
    $('#silent-count').textContent = s.devicesSilent || '';
    const m = await api('/ui/api/mailboxes');
    fill('#mailboxes', m.map((r) => h('tr', {}, h('td', { class: 'mono' }, r.mailbox), h('td', {}, r.queued), h('td', {}, r.queued ? ago(r.oldestSeconds) : ''),
      h('td', {}, r.inFlight), h('td', {}, r.pausedUntil ? when(r.pausedUntil) : ''), h('td', { class: 'err' }, r.lastError ? r.lastError + ' (' + when(r.lastErrorAt) + ')' : ''))));
  }

  async function dead() {
    const rows = await api('/ui/api/dead');
    $('#dead-count').textContent = rows.length || '';
    fill('#dead', rows.map((r) => h('tr', { 'data-qid': r.qid }, h('td', {}, when(Date.parse(r.receivedAt))), h('td', { class: 'mono' }, h('a', { href: '#message/' + r.qid }, r.qid)),
      h('td', { class: 'mono' }, r.mailbox), h('td', {}, r.rcpts.join(', ')), h('td', {}, r.attempts), h('td', { class: 'err' }, r.lastError || ''),
      h('td', {}, h('div', { class: 'actions' }, h('button', { type: 'button', class: 'retry', onclick: () => act('requeue', r.qid) }, 'Retry'),
        h('button', { type: 'button', class: 'danger delete', onclick: () => act('delete', r.qid) }, 'Delete'),
        h('a', { href: '/ui/api/message/' + r.qid + '/eml', download: r.qid + '.eml' }, '.eml'))))));
  }

  async function devices() {
    const d = await api('/ui/api/devices');
    $('#silent-count').textContent = d.devices.filter((x) => x.silent).length || '';
    fill('#devices', d.devices.map((x) => h('tr', { 'data-device': x.id }, h('td', { class: 'mono' }, x.id, x.silent ? [' ', state('silent')] : null, x.via ? h('div', { class: 'hint' }, (x.kind === 'user' ? 'from ' : '') + x.via) : null),
      h('td', {}, when(x.lastSeen), h('div', { class: 'hint' }, ago((d.now - x.lastSeen) / 1000) + ' ago')), h('td', {}, x.today), h('td', {}, span(x.gapMs)), h('td', {}, x.tls || 'none'),
      h('td', { class: 'err' }, x.lastError ? x.lastError + ' (' + when(x.lastErrorAt) + ')' : ''))));
  }

  async function search(ev) {
    if (ev) ev.preventDefault();
    const params = new URLSearchParams();
    for (const [k, v] of new FormData($('#search-form'))) if (String(v).trim()) params.set(k, String(v).trim());
    const rows = await api('/ui/api/search?' + params);
    fill('#results', rows.map((r) => h('tr', { class: 'click', 'data-qid': r.qid, onclick: () => { location.hash = '#message/' + r.qid; } },
      h('td', {}, when(r.at)), h('td', { class: 'mono' }, r.qid), h('td', {}, r.sender || '<>'), h('td', {}, r.rcpts.join(', ')),
      h('td', {}, r.user || r.client), h('td', {}, state(r.state)), h('td', {}, r.attempts))));
  }

  function eventText(e) {
    const bits = [e.kind];
    if (e.attempt) bits.push('attempt ' + e.attempt);
    if (e.status) bits.push('HTTP ' + e.status);
    if (e.code) bits.push(e.code);
    if (e.reason && e.reason !== e.code) bits.push(e.reason);
    if (e.by) bits.push('by ' + e.by);
    if (e.dsn) bits.push('notice ' + e.dsn);
    return bits.join(' · ');
  }

  async function story(qid) {
    openQid = qid;
    const s = await api('/ui/api/message/' + qid);
    const row = (k, v) => [h('dt', {}, k), h('dd', {}, v)];
    const actions = h('div', { class: 'actions' });
    if (s.spool === 'queue') actions.append(h('button', { type: 'button', class: 'retry', onclick: () => act('retry', qid) }, 'Retry now'));
    if (s.spool === 'dead') actions.append(h('button', { type: 'button', class: 'retry', onclick: () => act('requeue', qid) }, 'Retry'));
    if (s.spool) actions.append(h('button', { type: 'button', class: 'danger delete', onclick: () => act('delete', qid) }, 'Delete'), h('a', { href: '/ui/api/message/' + qid + '/eml', download: qid + '.eml' }, 'Download .eml'));
    const trace = h('div', { id: 'trace' }, h('button', { type: 'button', class: 'secondary', onclick: () => loadTrace(qid) }, 'Ask Exchange what it did with it'));
    $('#story').replaceChildren(h('h2', {}, 'Message ', h('span', { class: 'mono' }, s.qid), ' ', state(s.state)),
      h('dl', {}, row('Received', when(s.at)), row('From client', s.client + (s.user ? ' as ' + s.user : '') + ' on ' + s.listener + (s.tls ? ' (' + s.tls + ')' : ' (no TLS)')),
        row('HELO', s.helo), row('Envelope from', s.sender || '<>'), row('Envelope to', s.rcpts.join(', ')), row('Sent as', s.mailbox),
        row('Message-ID', s.messageId || ''), s.subject ? row('Subject', s.subject) : null, row('Size', s.size + ' bytes'), row('Attempts', s.attempts),
        row('Now', s.spool === 'queue' ? 'in the queue' : s.spool === 'dead' ? 'in the dead-letter folder' : 'not kept (delivered, bounced or deleted)')),
      actions, h('h3', {}, 'Story'),
      h('ol', { class: 'timeline' }, h('li', {}, when(s.at) + ' accepted'), s.events.map((e) => h('li', { class: e.kind === 'delivered' ? 'ok' : /dead|bounced|deferred/.test(e.kind) ? 'bad' : '' },
        when(e.at) + ' ' + eventText(e), e.requestId ? h('div', { class: 'hint mono' }, 'request-id ' + e.requestId) : null, e.detail ? h('div', { class: 'hint' }, e.detail) : null))),
      h('h3', {}, 'What Exchange did with it'), trace);
    $('#story').hidden = false;
  }

  async function loadTrace(qid) {
    const t = await api('/ui/api/message/' + qid + '/trace');
    const box = $('#trace');
    if (t.status !== 'ok') { box.replaceChildren(h('p', { class: 'hint' }, t.message || t.status)); return; }
    box.replaceChildren(h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Recipient'), h('th', {}, 'Exchange status'), h('th', {}, 'Received'))),
      h('tbody', {}, t.rows.map((r) => h('tr', {}, h('td', {}, r.recipient), h('td', {}, state(String(r.status).toLowerCase()), ' ', r.status), h('td', {}, r.received ? when(Date.parse(r.received)) : '')))))));
  }

  async function act(action, qid) {
    if (action === 'delete' && !confirm('Delete ' + qid + '? It cannot be sent afterwards.')) return;
    try {
      const r = await api('/ui/api/message/' + qid + '/' + action, { method: 'POST' });
      notice(r.message, false);
    } catch (err) { notice(String(err.message || err), true); }
    await refresh();
  }

  async function refresh() {
    try {
      if (view === 'overview') await overview();
      else if (view === 'dead') await dead();
      else if (view === 'devices') await devices();
      else if (view === 'messages' && openQid) await story(openQid);
      $('#updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    } catch (err) { if (view !== 'login') notice(String(err.message || err), true); }
  }

  async function route() {
    const hash = location.hash.slice(1) || 'overview';
    const m = /^message\/([0-9A-Za-z]{12})$/.exec(hash);
    if (m) { show('messages'); await story(m[1]).catch((e) => notice(e.message, true)); return; }
    openQid = null;
    $('#story').hidden = true;
    show(['overview', 'messages', 'dead', 'devices'].includes(hash) ? hash : 'overview');
    await refresh();
  }

  async function start() {
    try {
      const s = await api('/ui/api/session');
      csrf = s.csrf;
      $('#user').textContent = s.user;
      $('#logout').hidden = s.mode !== 'login';
      $('#nav').hidden = false;
      notice('', false);
      await route();
    } catch (err) { if (view !== 'login') notice(String(err.message || err), true); }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#search-form').addEventListener('submit', (e) => search(e).catch((err) => notice(err.message, true)));
    $('#login-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      const res = await fetch('/ui/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: f.get('username'), password: f.get('password') }) });
      if (!res.ok) { notice((await res.json()).error, true); return; }
      e.target.reset();
      await start();
    });
    $('#logout').addEventListener('click', async () => { await api('/ui/api/logout', { method: 'POST' }).catch(() => null); csrf = null; showLogin(); });
    window.addEventListener('hashchange', () => route());
    timer = setInterval(() => { if (!document.hidden) refresh(); }, 5000);
    start();
  });
})();
`;

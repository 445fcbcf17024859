/** The status page's style sheet: no external fonts or images, readable on a phone (tables scroll sideways, forms stack). */

export const PAGE_STYLE = `
:root { --fg: #1b1f24; --muted: #5b6570; --bg: #f6f7f9; --card: #fff; --line: #d9dde3; --accent: #0f5cc0; --bad: #b3261e; --warn: #8a5a00; --ok: #1e7b34; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem; padding: .6rem 1rem; background: #102a43; color: #fff; }
header h1 { font-size: 1.05rem; margin: 0; font-weight: 600; }
nav { display: flex; flex-wrap: wrap; gap: .25rem; }
nav a { color: #d9e2ec; text-decoration: none; padding: .35rem .7rem; border-radius: 6px; }
nav a.active, nav a:hover { background: #243b53; color: #fff; }
#who { margin-left: auto; font-size: .9rem; }
main { padding: 1rem; max-width: 1200px; margin: 0 auto; }
h2 { font-size: 1.05rem; margin: 1.2rem 0 .6rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: .6rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .6rem .8rem; }
.card .n { font-size: 1.6rem; font-weight: 600; }
.card .l { color: var(--muted); font-size: .85rem; }
.card.bad .n { color: var(--bad); }
.card.warn .n { color: var(--warn); }
.scroll { overflow-x: auto; background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef1f5; font-weight: 600; white-space: nowrap; }
tr.click { cursor: pointer; }
tr.click:hover { background: #f0f5ff; }
td.err { color: var(--bad); max-width: 28rem; overflow-wrap: anywhere; }
td.mono, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85rem; }
.badge { display: inline-block; min-width: 1.3em; padding: 0 .35em; border-radius: 1em; background: #486581; color: #fff; font-size: .75rem; text-align: center; }
.badge:empty { display: none; }
.badge.warn { background: #c77700; }
.state { display: inline-block; padding: 0 .45em; border-radius: 4px; font-size: .8rem; background: #e4e7eb; }
.state.delivered { background: #d3f0d9; color: var(--ok); }
.state.dead, .state.bounced { background: #fde2e1; color: var(--bad); }
.state.queued { background: #e1ecfd; color: var(--accent); }
.state.silent { background: #fff0d6; color: var(--warn); }
form.search { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: .5rem .8rem; align-items: end; margin-bottom: .8rem; }
label { display: flex; flex-direction: column; font-size: .8rem; color: var(--muted); gap: .2rem; }
input, select { font: inherit; padding: .4rem .5rem; border: 1px solid var(--line); border-radius: 6px; background: #fff; color: var(--fg); min-width: 0; }
button { font: inherit; padding: .45rem .9rem; border: 1px solid #0f5cc0; border-radius: 6px; background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
button:disabled { opacity: .5; cursor: default; }
#view-login form { display: grid; gap: .7rem; max-width: 22rem; }
#story { margin-top: 1rem; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .8rem 1rem; }
#story dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: .5rem 0; }
#story dt { color: var(--muted); }
#story dd { margin: 0; overflow-wrap: anywhere; }
ol.timeline { list-style: none; padding: 0; margin: .5rem 0; border-left: 2px solid var(--line); }
ol.timeline li { padding: .2rem 0 .5rem .8rem; position: relative; }
ol.timeline li::before { content: ""; position: absolute; left: -6px; top: .55rem; width: 10px; height: 10px; border-radius: 50%; background: var(--accent); }
ol.timeline li.bad::before { background: var(--bad); }
ol.timeline li.ok::before { background: var(--ok); }
.actions { display: flex; flex-wrap: wrap; gap: .5rem; margin: .6rem 0; }
.hint { color: var(--muted); font-size: .85rem; }
#notice { background: #fff7e0; border: 1px solid #f0d58c; padding: .5rem .8rem; border-radius: 6px; }
#notice.error { background: #fde2e1; border-color: #f5b5b1; }
footer { color: var(--muted); font-size: .8rem; padding: .5rem 1rem 1.5rem; text-align: right; }
@media (max-width: 640px) {
  main { padding: .6rem; }
  th, td { padding: .4rem; }
  #who { margin-left: 0; }
}
`;

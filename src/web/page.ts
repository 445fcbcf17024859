/** The status page's HTML: a shell the script fills (no inline script or style, so the Content-Security-Policy can forbid both). */

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>smtp-graph-relay status</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/ui/app.css">
<script src="/ui/app.js" defer></script>
</head>
<body>
<header>
  <h1>smtp-graph-relay</h1>
  <nav id="nav" hidden>
    <a href="#overview" data-view="overview">Overview</a>
    <a href="#messages" data-view="messages">Messages</a>
    <a href="#dead" data-view="dead">Dead letters <span id="dead-count" class="badge"></span></a>
    <a href="#devices" data-view="devices">Devices <span id="silent-count" class="badge warn"></span></a>
  </nav>
  <div id="who"><span id="user"></span> <button id="logout" type="button" hidden>Log out</button></div>
</header>
<main>
  <p id="notice" role="status" hidden></p>

  <section id="view-login" hidden>
    <h2>Log in</h2>
    <form id="login-form" autocomplete="on">
      <label>User <input name="username" autocomplete="username" required></label>
      <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
      <button type="submit">Log in</button>
      <p class="hint">An admin user from admin.auth.users, or the user name <code>token</code> with the admin token.</p>
    </form>
  </section>

  <section id="view-overview" hidden>
    <h2>Queue</h2>
    <div id="cards" class="cards"></div>
    <h2>Mailboxes</h2>
    <div class="scroll"><table id="mailboxes"><thead><tr><th>Mailbox</th><th>Queued</th><th>Oldest</th><th>In flight</th><th>Paused until</th><th>Last error</th></tr></thead><tbody></tbody></table></div>
  </section>

  <section id="view-messages" hidden>
    <h2>Find a message</h2>
    <form id="search-form" class="search">
      <label>Queue id <input name="qid"></label>
      <label>Message-ID <input name="messageId"></label>
      <label>Sender <input name="sender" type="text" inputmode="email"></label>
      <label>Recipient <input name="recipient" type="text" inputmode="email"></label>
      <label>Client address <input name="client"></label>
      <label>AUTH user <input name="user"></label>
      <label>State <select name="state"><option value="">any</option><option>queued</option><option>delivered</option><option>dead</option><option>bounced</option><option>deleted</option></select></label>
      <label>Since <input name="since" placeholder="2h, 7d or 2026-01-10"></label>
      <label>Until <input name="until" placeholder="now"></label>
      <button type="submit">Search</button>
    </form>
    <div class="scroll"><table id="results"><thead><tr><th>Received</th><th>Queue id</th><th>From</th><th>To</th><th>Device</th><th>State</th><th>Tries</th></tr></thead><tbody></tbody></table></div>
    <article id="story" hidden></article>
  </section>

  <section id="view-dead" hidden>
    <h2>Dead letters</h2>
    <p class="hint">Messages Graph refused for good or that expired. Retry puts one back in the queue with a fresh lifetime.</p>
    <div class="scroll"><table id="dead"><thead><tr><th>Received</th><th>Queue id</th><th>Mailbox</th><th>To</th><th>Tries</th><th>Last error</th><th>Actions</th></tr></thead><tbody></tbody></table></div>
  </section>

  <section id="view-devices" hidden>
    <h2>Devices</h2>
    <p class="hint">Each AUTH user, or else each client address, that sent through the relay. A device is silent when it has sent nothing for longer than its usual gap allows (history.devices).</p>
    <div class="scroll"><table id="devices"><thead><tr><th>Device</th><th>Last seen</th><th>Today</th><th>Usual gap</th><th>TLS</th><th>Last error</th></tr></thead><tbody></tbody></table></div>
  </section>
</main>
<footer><span id="updated"></span></footer>
</body>
</html>
`;

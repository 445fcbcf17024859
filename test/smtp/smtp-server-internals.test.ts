/**
 * The smtp-server internals src/smtp/smtp-server-internals.ts relies on, each checked here: an smtp-server
 * upgrade that renames or reshapes one fails this file, not the relay in production.
 */

import type { Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { afterEach, describe, expect, it } from 'vitest';
import { closeNow, installCommandGuard, installReplyPatch, setCommandPolicy, setGreetingDelay, transactionsUnderWay, trustProxies, withMaxCommandLength } from '../../src/smtp/smtp-server-internals.js';
import { RawSmtp } from '../helpers/smtp-clients.js';

const servers: SMTPServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => closeNow(s)));
});

async function listen(options: ConstructorParameters<typeof SMTPServer>[0]): Promise<{ server: SMTPServer; port: number }> {
  const server = new SMTPServer({ logger: false, authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], ...options });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.server.address() as { port: number }).port };
}

/** The one connection of a server, as smtp-server keeps it. */
function connectionOf(server: SMTPServer): Record<string, unknown> {
  const [c] = [...server.connections];
  return c as unknown as Record<string, unknown>;
}

describe('smtp-server internals the relay uses', () => {
  it('prototypes: SMTPConnection.send and _createParser, SMTPStream._write and startDataMode', () => {
    const conn = SMTPConnection.prototype as unknown as Record<string, unknown>;
    const stream = SMTPStream.prototype as unknown as Record<string, unknown>;
    for (const [name, fn] of [['SMTPConnection.send', conn['send']], ['SMTPConnection._createParser', conn['_createParser']], ['SMTPStream._write', stream['_write']], ['SMTPStream.startDataMode', stream['startDataMode']]] as const) {
      expect(typeof fn, name).toBe('function');
    }
  });

  it('a server: _expectsProxyHeader and _handleProxy (replaced for CIDR trust and PROXY v2), connections, _closeTimeout on close', async () => {
    const server = new SMTPServer({ logger: false, useProxy: true });
    const internals = server as unknown as Record<string, unknown>;
    expect(typeof internals['_expectsProxyHeader']).toBe('function');
    expect(typeof internals['_handleProxy']).toBe('function');
    trustProxies(server, (address) => address === '10.9.8.7');
    const expects = internals['_expectsProxyHeader'] as (s: Partial<Socket>) => boolean;
    expect([expects({ remoteAddress: '10.9.8.7' }), expects({ remoteAddress: '10.9.8.6' })]).toEqual([true, false]);
    expect(server.connections).toBeInstanceOf(Set);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const closed = closeNow(server);
    expect(internals['_closeTimeout']).toBeTruthy();
    await closed;
  });

  it('a connection: the fields the command guard and the reply patch read, and its session', async () => {
    installReplyPatch();
    installCommandGuard();
    const { server, port } = await listen({});
    const quits: string[] = [];
    setCommandPolicy(server, { bareLineEndings: 'reject', proxyRefusal: () => '5.7.1 no', authNeedsTls: null, refused: () => undefined, quit: (session) => quits.push(session.id) });
    const c = await RawSmtp.connect(port);
    expect((await c.reply()).code).toBe(220);
    await c.cmd('EHLO internals.test');
    const conn = connectionOf(server);
    for (const field of ['_ready', '_upgrading', 'secure']) expect(typeof conn[field], field).toBe('boolean');
    expect(conn['_ready']).toBe(true);
    expect(typeof conn['_unrecognizedCommands']).toBe('number');
    expect(typeof conn['_whenWritable']).toBe('function');
    expect(conn['_server']).toBe(server);
    expect(conn['_socket']).toBeDefined();
    expect('_nextHandler' in conn).toBe(true);
    const parser = conn['_parser'] as Record<string, unknown>;
    expect(typeof parser['_remainder']).toBe('string');
    expect(typeof parser['_dataMode']).toBe('boolean');
    expect(typeof parser['oncommand']).toBe('function');
    // The session's envelope: what transactionsUnderWay counts.
    expect(transactionsUnderWay(server)).toBe(0);
    await c.cmd('MAIL FROM:<a@contoso.example>');
    expect(transactionsUnderWay(server)).toBe(1);
    // The guard and the reply patch are in the path: a bare CR in a command is refused with our own enhanced code.
    const r = await c.cmd('RCPT TO:<b@contoso.example>\rX=1');
    expect(r.text).toMatch(/^501 5\.5\.2 Syntax error: bare CR at column \d+/);
    // QUIT reaches the policy before smtp-server answers it.
    expect(quits).toEqual([]);
    expect((await c.cmd('QUIT')).code).toBe(221);
    expect(quits).toEqual([(conn['session'] as { id: string }).id]);
    c.close();
  });

  it('init, _setListeners and connectionReady: the greeting pause is the listener\'s, early talkers still get 421', async () => {
    const conn = SMTPConnection.prototype as unknown as Record<string, unknown>;
    for (const name of ['init', '_setListeners', 'connectionReady']) expect(typeof conn[name], name).toBe('function');
    // A client that sends EHLO before reading anything: with no pause the greeting is already out; with a
    // pause it talked too soon. (No clock is read: the pause of a minute cannot pass during the test.)
    const talkFirst = async (delay: number | undefined): Promise<string> => {
      // onConnect answering at once and no reverse lookup, as the relay's listeners (smtp-server's defaults wait).
      const { server, port } = await listen({ onConnect: (_session, cb) => cb(), disableReverseLookup: true });
      if (delay !== undefined) setGreetingDelay(server, delay);
      const c = await RawSmtp.connect(port);
      c.socket.write('EHLO early.test\r\n');
      const first = await c.reply();
      const second = first.code === 220 ? await c.reply() : first;
      c.close();
      return `${first.code} ${second.code}`;
    };
    expect(await talkFirst(0)).toBe('220 250');
    expect(await talkFirst(60_000)).toBe('421 421');
    expect(await talkFirst(undefined)).toBe('421 421'); // smtp-server's own 100 ms, for servers the relay did not configure
    // maxClients is still checked before the pause.
    const { server, port } = await listen({ maxClients: 1 });
    setGreetingDelay(server, 0);
    const a = await RawSmtp.connect(port);
    expect((await a.reply()).code).toBe(220);
    const b = await RawSmtp.connect(port);
    expect((await b.reply()).text).toMatch(/^421 .*Too many connected clients/);
    a.close();
    b.close();
  });

  it('maxCommandLength, read by the command parser although the typings lack it', async () => {
    const reply = async (max: number): Promise<number> => {
      const { port } = await listen(withMaxCommandLength({}, max));
      const c = await RawSmtp.connect(port);
      await c.reply();
      const r = await c.cmd(`NOOP ${'x'.repeat(700)}`);
      c.close();
      return r.code;
    };
    expect(await reply(4096)).toBe(250);
    expect(await reply(600)).toBe(421); // too long a line: smtp-server closes the session
  });
});

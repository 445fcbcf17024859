/** Exchange's trace when someone looks: cached per message, rate-limited, and a clear word when it cannot be had. */

import { describe, expect, it } from 'vitest';
import { TraceLookup } from '../../src/app/trace.js';
import type { TraceResult } from '../../src/graph/message-trace.js';
import type { MessageStory } from '../../src/history/types.js';

const story = (qid: string, messageId: string | null = `<${qid}@printer>`): MessageStory => ({ qid, at: 1_000_000, listener: 'default', client: '10.0.0.1', user: null, tls: null, helo: '', sender: '', rcpts: ['a@contoso.example'], mailbox: 'm@contoso.example', account: null, messageId, size: 1, subject: null, state: 'delivered', stateAt: 0, attempts: 1, lastError: null, events: [] });
const tokens = { getToken: async () => 'token', lastSuccessAt: null };
const target = () => ({ graphUrl: 'https://graph', tokens });

describe('trace lookup', () => {
  it('asks Graph once per message within 5 minutes, in a window around its acceptance', async () => {
    let now = 2_000_000;
    const asked: { messageId: string; since: number; until: number }[] = [];
    const fetch = async (_g: string, _t: string, q: { messageId: string; since: number; until: number }): Promise<TraceResult> => {
      asked.push(q);
      return { status: 'ok', rows: [{ recipient: 'a@contoso.example', status: 'delivered', received: null, size: 1, fromIP: null }] };
    };
    const t = new TraceLookup({ target, enabled: true, now: () => now, fetch });
    expect(await t.lookup(story('A'))).toMatchObject({ status: 'ok', rows: [{ status: 'delivered' }] });
    await t.lookup(story('A'));
    expect(asked).toEqual([{ messageId: '<A@printer>', since: 1_000_000 - 15 * 60_000, until: 2_000_000 }]);
    now += 5 * 60_000 + 1;
    await t.lookup(story('A'));
    expect(asked).toHaveLength(2);
  });

  it('stops asking at 30 lookups in 5 minutes, and says when to try again', async () => {
    let n = 0;
    const t = new TraceLookup({ target, enabled: true, now: () => 5_000_000, fetch: async () => (n++, { status: 'ok', rows: [] }) });
    for (let i = 0; i < 30; i++) expect((await t.lookup(story(`M${i}`))).status).toBe('not-found');
    expect(await t.lookup(story('M30'))).toMatchObject({ status: 'unavailable', message: expect.stringMatching(/try again in 300 s/) });
    expect(n).toBe(30);
  });

  it('says why there is no trace: off, capture mode, no Message-ID, no such message', async () => {
    const fetch = async (): Promise<TraceResult> => ({ status: 'no-permission', message: 'grant it' });
    expect(await new TraceLookup({ target, enabled: false, fetch }).lookup(story('A'))).toMatchObject({ status: 'unavailable', message: expect.stringContaining('history.messageTrace') });
    expect(await new TraceLookup({ target: () => null, enabled: true, fetch }).lookup(story('A'))).toMatchObject({ message: expect.stringContaining('capture mode') });
    const t = new TraceLookup({ target, enabled: true, fetch });
    expect(await t.lookup(story('A', null))).toMatchObject({ message: expect.stringContaining('Message-ID') });
    expect(await t.lookup(null)).toMatchObject({ status: 'not-found' });
    expect(await t.lookup(story('B'))).toMatchObject({ status: 'no-permission', message: 'grant it' });
  });
});

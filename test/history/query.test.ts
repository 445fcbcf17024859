/** The search the page and the command line share: fields, times (absolute, UTC dates, how long ago), limits, refusals. */

import { describe, expect, it } from 'vitest';
import { parseQuery, parseTime, QueryError } from '../../src/history/query.js';

const NOW = Date.UTC(2026, 0, 12, 12);

describe('history query', () => {
  it('reads every field, trims, and drops empty ones', () => {
    expect(parseQuery({ qid: ' 4gQN ', messageId: '<a@b>', sender: '', recipient: 'alice@contoso.example', client: '10.0.0.1', user: 'floor3', state: 'dead', limit: '20' }, NOW)).toEqual({
      qid: '4gQN',
      messageId: '<a@b>',
      recipient: 'alice@contoso.example',
      client: '10.0.0.1',
      user: 'floor3',
      state: 'dead',
      limit: 20,
    });
  });

  it('takes times as dates (UTC), instants, or how long ago', () => {
    expect(parseTime('2026-01-10', NOW)).toBe(Date.UTC(2026, 0, 10));
    expect(parseTime('2026-01-10T09:30:00Z', NOW)).toBe(Date.UTC(2026, 0, 10, 9, 30));
    expect(parseTime('2h', NOW)).toBe(NOW - 2 * 3_600_000);
    expect(parseTime('7d', NOW)).toBe(NOW - 7 * 86_400_000);
    expect(parseQuery({ since: '30m', until: '2026-01-12' }, NOW)).toEqual({ since: NOW - 30 * 60_000, until: Date.UTC(2026, 0, 12) });
  });

  it('refuses what it cannot read, saying what it takes', () => {
    expect(() => parseQuery({ since: 'yesterday' }, NOW)).toThrow(QueryError);
    expect(() => parseQuery({ since: 'yesterday' }, NOW)).toThrow(/30m, 2h, 7d/);
    expect(() => parseQuery({ state: 'lost' }, NOW)).toThrow(/queued, delivered, dead, bounced, deleted/);
    expect(() => parseQuery({ limit: '0' }, NOW)).toThrow(/limit/);
    expect(() => parseQuery({ limit: '5000' }, NOW)).toThrow(/1000/);
  });
});

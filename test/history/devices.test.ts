/** The device view: last seen, today's count, the usual gap and silence, errors on the right device. */

import { describe, expect, it } from 'vitest';
import { DeviceTracker, deviceId } from '../../src/history/devices.js';

const H = 3_600_000;
const T0 = Date.UTC(2026, 0, 12, 8);

describe('device tracker', () => {
  it('learns a device\'s rhythm from the gaps between its bursts, and calls it silent only past factor × gap and minSilence', () => {
    const d = new DeviceTracker({ silenceFactor: 3, minSilenceMs: H });
    // A scanner that sends a burst of 3 every 2 hours: the seconds inside a burst are not its rhythm.
    for (let burst = 0; burst < 4; burst++) for (let i = 0; i < 3; i++) d.sent(null, '10.0.3.7', T0 + burst * 2 * H + i * 1000, 'TLSv1.3');
    const last = T0 + 6 * H + 2000;
    const [view] = d.list(last);
    expect(view).toMatchObject({ id: 'address:10.0.3.7', total: 12, today: 12, tls: 'TLSv1.3', silent: false });
    expect(view!.gapMs).toBeGreaterThan(1.9 * H);
    expect(view!.gapMs).toBeLessThan(2.1 * H);
    expect(d.silentCount(last + 5 * H)).toBe(0);
    expect(d.silentCount(last + 6.5 * H)).toBe(1);
    expect(d.list(last + 6.5 * H)[0]!.silent).toBe(true);
    // Sending again ends the silence.
    d.sent(null, '10.0.3.7', last + 7 * H, 'TLSv1.3');
    expect(d.silentCount(last + 7 * H + 1000)).toBe(0);
  });

  it('needs three messages and a gap before silence means anything; minSilence is a floor', () => {
    const d = new DeviceTracker({ silenceFactor: 2, minSilenceMs: 10 * H });
    d.sent(null, '10.0.0.1', T0, null);
    d.sent(null, '10.0.0.1', T0 + 2 * 60_000, null);
    expect(d.silentCount(T0 + 100 * H)).toBe(0);
    d.sent(null, '10.0.0.1', T0 + 4 * 60_000, null);
    // gap 2 min × 2 = 4 min, but the floor is 10 h.
    expect(d.silentCount(T0 + 5 * H)).toBe(0);
    expect(d.silentCount(T0 + 11 * H)).toBe(1);
  });

  it('counts today in UTC days, keys AUTH users apart from addresses, and puts a failed login on the user that address sent as', () => {
    const d = new DeviceTracker({ silenceFactor: 4, minSilenceMs: H });
    d.sent('Floor3-Printer', '10.0.3.7', T0, 'TLSv1.2');
    d.sent('floor3-printer', '10.0.3.7', T0 + H, 'TLSv1.2');
    expect(deviceId('Floor3-Printer', '10.0.3.7').id).toBe('user:floor3-printer');
    // The password changed: AUTH fails, no user on the session.
    d.failed(null, '10.0.3.7', T0 + 2 * H, 'auth: 535 5.7.8 Authentication credentials invalid');
    const byId = new Map(d.list(T0 + 2 * H).map((v) => [v.id, v]));
    expect(byId.get('user:floor3-printer')).toMatchObject({ kind: 'user', today: 2, via: '10.0.3.7', lastError: 'auth: 535 5.7.8 Authentication credentials invalid' });
    expect(byId.get('address:10.0.3.7')).toMatchObject({ kind: 'address', total: 0, lastError: expect.stringContaining('535') });
    // The next UTC day starts from zero.
    expect(d.list(T0 + 24 * H).find((v) => v.id === 'user:floor3-printer')!.today).toBe(0);
    d.sent('floor3-printer', '10.0.3.7', T0 + 24 * H, 'TLSv1.3');
    expect(d.list(T0 + 24 * H).find((v) => v.id === 'user:floor3-printer')!.today).toBe(1);
  });

  it('hands over what changed since the last batch, and restores devices loaded from the file', () => {
    const d = new DeviceTracker({ silenceFactor: 4, minSilenceMs: H });
    d.sent(null, '10.0.0.1', T0, null);
    d.sent(null, '10.0.0.2', T0, null);
    const dirty = d.takeDirty();
    expect(dirty.map((x) => x.id).sort()).toEqual(['address:10.0.0.1', 'address:10.0.0.2']);
    expect(d.takeDirty()).toEqual([]);
    const again = new DeviceTracker({ silenceFactor: 4, minSilenceMs: H });
    again.load(dirty);
    expect(again.size).toBe(2);
    expect(again.list(T0)[0]!.total).toBe(1);
  });
});

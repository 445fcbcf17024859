/** The Received: trace header (RFC 5321 section 3.7.2, RFC 5322 section 3.6.7) the relay prepends. */

export interface ReceivedInfo {
  helo: string;
  clientAddress: string;
  clientHostname?: string;
  byHost: string;
  protocol: string;
  queueId: string;
  /** Named only when there is exactly one, as most MTAs do: more would disclose Bcc recipients. */
  recipients: readonly string[];
  /** Milliseconds since the epoch. */
  date: number;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
let cachedSecond = NaN;
let cachedText = '';

/** Made once per second: every accepted message asks for one. */
export function rfc5322Date(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second === cachedSecond) return cachedText;
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  cachedText = `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
  cachedSecond = second;
  return cachedText;
}

/** Header text with CRLF line ends; client-supplied parts are reduced to safe characters. */
export function receivedHeader(r: ReceivedInfo): string {
  const clean = (s: string): string => s.replace(/[^\x21-\x7e]/g, '?').slice(0, 255);
  const ip = r.clientAddress.replace(/^::ffff:(?=\d+\.)/i, '');
  const literal = ip.includes(':') ? `IPv6:${ip}` : ip;
  const host = r.clientHostname && !r.clientHostname.startsWith('[') ? `${clean(r.clientHostname)} ` : '';
  let h = `Received: from ${clean(r.helo || 'unknown')} (${host}[${literal}])\r\n\tby ${r.byHost} (smtp-graph-relay) with ${r.protocol} id ${r.queueId}`;
  if (r.recipients.length === 1) h += `\r\n\tfor <${clean(r.recipients[0]!)}>`;
  return `${h};\r\n\t${rfc5322Date(r.date)}\r\n`;
}

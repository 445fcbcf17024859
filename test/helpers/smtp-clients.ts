/** Real SMTP clients for tests: Python's smtplib (a child process) and raw sockets. */

import { execFile } from 'node:child_process';
import net from 'node:net';

export interface PySendResult {
  ok: boolean;
  code?: number;
  message?: string;
  refused?: Record<string, [number, string]>;
}

/** Sends raw message bytes with smtplib.SMTP.sendmail; the message goes to Python as base64 so bytes are exact. */
export function pySend(port: number, from: string, to: string[], message: Buffer, opts: { host?: string; ehlo?: string } = {}): Promise<PySendResult> {
  const script = `
import base64, json, smtplib, sys
args = json.loads(sys.stdin.read())
msg = base64.b64decode(args['msg'])
try:
    s = smtplib.SMTP(args['host'], args['port'], local_hostname=args.get('ehlo'), timeout=30)
    s.ehlo()
    opts = ['SMTPUTF8'] if any(ord(c) > 127 for c in args['from'] + ''.join(args['to'])) else []
    refused = s.sendmail(args['from'], args['to'], msg, mail_options=opts)
    s.quit()
    print(json.dumps({'ok': True, 'refused': {k: [v[0], v[1].decode()] for k, v in refused.items()}}))
except smtplib.SMTPResponseException as e:
    print(json.dumps({'ok': False, 'code': e.smtp_code, 'message': e.smtp_error.decode(errors='replace')}))
except smtplib.SMTPRecipientsRefused as e:
    print(json.dumps({'ok': False, 'code': list(e.recipients.values())[0][0], 'message': list(e.recipients.values())[0][1].decode(errors='replace')}))
except smtplib.SMTPServerDisconnected as e:
    print(json.dumps({'ok': False, 'code': 0, 'message': 'disconnected: ' + str(e)}))
`;
  const args = JSON.stringify({ host: opts.host ?? '127.0.0.1', port, from, to, msg: message.toString('base64'), ehlo: opts.ehlo ?? 'pytest.local' });
  return new Promise((resolve, reject) => {
    // The arguments go through stdin: a message of a few hundred KB does not fit in argv (E2BIG).
    const child = execFile('python3', ['-c', script], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`python3 failed: ${stderr || err.message}`));
      resolve(JSON.parse(stdout) as PySendResult);
    });
    child.stdin!.end(args);
  });
}

/** A line-oriented raw SMTP conversation for protocol tests. */
export class RawSmtp {
  private buf = '';
  private waiters: (() => void)[] = [];
  readonly socket: net.Socket;
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buf += d;
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawSmtp> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, host, () => resolve(new RawSmtp(s)));
      s.once('error', reject);
    });
  }

  /** Reads one complete reply (all its continuation lines). */
  async reply(timeoutMs = 15_000): Promise<{ code: number; text: string }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*(\d{3})(?: [^\r\n]*)?\r\n/.exec(this.buf);
      if (m) {
        this.buf = this.buf.slice(m[0].length);
        return { code: Number(m[1]), text: m[0].trimEnd() };
      }
      if (this.closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.buf)}`);
      if (Date.now() > deadline) throw new Error(`no reply; buffer: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, deadline - Date.now());
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  async cmd(line: string): Promise<{ code: number; text: string }> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  close(): void {
    this.socket.destroy();
  }
}

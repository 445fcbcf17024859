/** Test helpers for the SMTP front door: throw-away certificates (openssl CLI), a Python smtplib client with TLS and AUTH, a raw client with STARTTLS. */

import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

export interface CertPair {
  certFile: string;
  keyFile: string;
}

/** A self-signed certificate for localhost/127.0.0.1, made now and never committed. */
export function makeCert(dir = mkdtempSync(path.join(tmpdir(), 'relay-cert-')), name = 'server'): CertPair {
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
  return { certFile, keyFile };
}

export interface PyClientOptions {
  port: number;
  mode: 'plain' | 'starttls' | 'ssl';
  cafile?: string;
  /** Caps the client at this version (e.g. 'TLSv1') with OpenSSL SECLEVEL=0 so it can speak it at all. */
  tlsMax?: 'TLSv1' | 'TLSv1_1';
  user?: string;
  password?: string;
  mech?: 'PLAIN' | 'LOGIN';
  /** Several logins in one run (each is a fresh connection), for lockout tests. */
  from?: string;
  to?: string[];
  message?: Buffer;
}

export interface PyClientResult {
  ok: boolean;
  stage?: string;
  code?: number;
  message?: string;
  /** SHA-256 of the server certificate (DER), when TLS was used. */
  certSha256?: string;
  tlsVersion?: string;
}

const SCRIPT = String.raw`
import base64, hashlib, json, smtplib, ssl, sys
a = json.loads(sys.argv[1])
out = {'ok': False, 'stage': 'connect'}
def ctx():
    c = ssl.create_default_context(cafile=a.get('cafile'))
    if a.get('tlsMax'):
        c.set_ciphers('DEFAULT@SECLEVEL=0')
        c.minimum_version = ssl.TLSVersion.TLSv1
        c.maximum_version = getattr(ssl.TLSVersion, a['tlsMax'])
    return c
def peer(s):
    sock = s.sock
    if isinstance(sock, ssl.SSLSocket):
        out['certSha256'] = hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()
        out['tlsVersion'] = sock.version()
try:
    if a['mode'] == 'ssl':
        s = smtplib.SMTP_SSL('127.0.0.1', a['port'], local_hostname='pyclient.local', timeout=30, context=ctx())
    else:
        s = smtplib.SMTP('127.0.0.1', a['port'], local_hostname='pyclient.local', timeout=30)
    out['stage'] = 'ehlo'
    s.ehlo()
    if a['mode'] == 'starttls':
        out['stage'] = 'starttls'
        s.starttls(context=ctx())
        s.ehlo()
    peer(s)
    if a.get('user') is not None:
        out['stage'] = 'auth'
        s.user, s.password = a['user'], a['password']
        if a.get('mech', 'PLAIN') == 'PLAIN':
            s.auth('PLAIN', s.auth_plain)
        else:
            s.auth('LOGIN', s.auth_login, initial_response_ok=False)
    if a.get('from') is not None:
        out['stage'] = 'send'
        refused = s.sendmail(a['from'], a['to'], base64.b64decode(a['msg']))
        if refused:
            k = list(refused)[0]
            raise smtplib.SMTPResponseException(refused[k][0], refused[k][1])
    s.quit()
    out['ok'] = True
except smtplib.SMTPRecipientsRefused as e:
    v = list(e.recipients.values())[0]
    out.update(code=v[0], message=v[1].decode(errors='replace'))
except smtplib.SMTPResponseException as e:
    out.update(code=e.smtp_code, message=e.smtp_error.decode(errors='replace') if isinstance(e.smtp_error, bytes) else str(e.smtp_error))
except smtplib.SMTPNotSupportedError as e:
    out.update(code=-2, message='not supported: ' + str(e))
except (ssl.SSLError, ConnectionError, smtplib.SMTPServerDisconnected, OSError) as e:
    out.update(code=-1, message=type(e).__name__ + ': ' + str(e))
print(json.dumps(out))
`;

export function pyClient(o: PyClientOptions): Promise<PyClientResult> {
  const args = JSON.stringify({ ...o, msg: o.message?.toString('base64') });
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', SCRIPT, args], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`python3 failed: ${stderr || err.message}`));
      resolve(JSON.parse(stdout) as PyClientResult);
    });
  });
}

/** A small RFC 5322 message with CRLF line endings. */
export function mail(from: string, to: string, subject = 'test', body = 'hello\r\n'): Buffer {
  return Buffer.from(`From: ${from}\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@test.local>\r\n\r\n${body}`, 'latin1');
}

/** curl as an SMTP client; resolves with its exit code and stderr. */
export function curlSend(url: string, extra: string[], from: string, to: string, message: Buffer): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile('curl', ['-sS', '--max-time', '30', url, '--mail-from', from, '--mail-rcpt', to, '--upload-file', '-', ...extra], (err, _stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr });
    });
    child.stdin!.end(message);
  });
}

/** A raw SMTP conversation over a plain or TLS socket, with STARTTLS: for replies a library client would hide. */
export class LineClient {
  private buf = '';
  private waiters: (() => void)[] = [];
  closed = false;

  constructor(readonly socket: net.Socket) {
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

  static connect(port: number): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new LineClient(s)));
      s.once('error', reject);
    });
  }

  /** One complete reply, continuation lines included; rejects when the connection closes first. */
  async reply(): Promise<{ code: number; text: string }> {
    for (;;) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*(\d{3})(?: [^\r\n]*)?\r\n/.exec(this.buf);
      if (m) {
        this.buf = this.buf.slice(m[0].length);
        return { code: Number(m[1]), text: m[0].trimEnd() };
      }
      if (this.closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Resolves once the relay has closed the connection. */
  async closedByPeer(): Promise<void> {
    while (!this.closed) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  cmd(line: string): Promise<{ code: number; text: string }> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  /** STARTTLS, then the TLS handshake on the same socket: a new client for the encrypted session. */
  async starttls(ca: Buffer): Promise<LineClient> {
    const r = await this.cmd('STARTTLS');
    if (r.code !== 220) throw new Error(`STARTTLS refused: ${r.text}`);
    this.socket.removeAllListeners('data');
    const secure = tls.connect({ socket: this.socket, ca, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    return new LineClient(secure);
  }

  close(): void {
    this.socket.destroy();
  }
}

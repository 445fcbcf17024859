/**
 * Graph's sendMail as smtp-sink is SMTP's: an HTTPS server that reads each request whole and answers 202
 * at once, checking nothing. For `bench:vs-postfix --far-side sink`, so that the relay's far side costs the
 * shared cores about what Postfix's does; tokens still come from the emulator (Entra ID). Uses the
 * emulator's server certificate (beside its CA), so the relay trusts it as it trusts the emulator.
 * Prints one JSON line {"graphUrl": …} when listening. The emulator must issue tokens for that origin
 * (its `otherResources`), so the port is chosen first.
 *   node --import tsx bench/graph-sink.ts CA_CERT_PATH PORT
 */

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

const pki = path.dirname(process.argv[2] ?? '');
const server = createServer({ key: readFileSync(path.join(pki, 'server.key')), cert: readFileSync(path.join(pki, 'server.crt')), keepAlive: true }, (req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    const ok = req.method === 'POST' && /^\/v1\.0\/users\/[^/]+\/sendMail$/i.test(req.url ?? '');
    const requestId = randomUUID();
    if (ok) {
      res.writeHead(202, { 'request-id': requestId, 'content-length': '0' });
      res.end();
      return;
    }
    const body = JSON.stringify({ error: { code: 'ErrorInvalidRequest', message: `graph-sink answers sendMail only, not ${req.method} ${req.url}`, innerError: { 'request-id': requestId } } });
    res.writeHead(400, { 'content-type': 'application/json', 'request-id': requestId, 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[3] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ graphUrl: `https://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

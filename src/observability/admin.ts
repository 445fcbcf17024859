/** The admin HTTP listener: /healthz, /readyz and /metrics on their own port, apart from SMTP; the status page (src/web/) too. */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './logger.js';
import type { RelayMetrics } from './metrics.js';
import type { ReadinessCheck } from './readiness.js';

/** The status page, made by app/ (src/web/): it answers the paths it owns and says who may scrape. */
export interface AdminPage {
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>;
  /** /metrics with admin.auth.protectMetrics: the bearer token is needed. Probes never need anything. */
  metricsAllowed(req: IncomingMessage): boolean;
}

export class AdminServer {
  private readonly server: Server;

  constructor(
    private readonly metrics: RelayMetrics,
    private readonly readiness: ReadinessCheck,
    private readonly log: Logger,
    private readonly page: AdminPage | null = null,
    /** A replica of a fleet: what /fleet shows (its mode, its slots, every replica's leases). */
    private readonly fleet: (() => Promise<unknown>) | null = null,
  ) {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log.error({ event: 'admin-error', err, path: req.url }, 'admin request failed');
        if (!res.headersSent) send(res, 500, 'application/json', JSON.stringify({ status: 'error' }));
        else res.destroy();
      });
    });
    // Probes and scrapers open a connection per request; keep idle ones from holding a stop.
    this.server.keepAliveTimeout = 5_000;
  }

  listen(host: string, port: number): Promise<{ address: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        const a = this.server.address() as AddressInfo;
        resolve({ address: a.address, port: a.port });
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    if (this.page && (await this.page.handle(req, res, url))) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, 'application/json', JSON.stringify({ status: 'method not allowed' }));
    }
    switch (path) {
      case '/healthz':
        return send(res, 200, 'application/json', JSON.stringify({ status: 'ok' }));
      case '/readyz': {
        const account = new URL(req.url ?? '/', 'http://x').searchParams.get('account') ?? undefined;
        const r = await this.readiness.check(account);
        return send(res, r.ready ? 200 : 503, 'application/json', JSON.stringify(r.ready ? { status: 'ready', checks: r.checks } : { status: 'not ready', reason: r.reason, checks: r.checks }));
      }
      case '/metrics': {
        if (this.page && !this.page.metricsAllowed(req)) {
          res.setHeader('www-authenticate', 'Bearer');
          return send(res, 401, 'application/json', JSON.stringify({ status: 'unauthorized: /metrics needs the admin token (admin.auth.protectMetrics)' }));
        }
        const m = await this.metrics.render();
        return send(res, 200, m.contentType, m.body);
      }
      case '/fleet':
        if (this.fleet) return send(res, 200, 'application/json', JSON.stringify(await this.fleet()));
        return send(res, 404, 'application/json', JSON.stringify({ status: 'not a fleet (no fleet.redisUrl)' }));
      default:
        return send(res, 404, 'application/json', JSON.stringify({ status: 'not found', paths: ['/healthz', '/readyz', '/metrics', ...(this.page ? ['/ui/'] : []), ...(this.fleet ? ['/fleet'] : [])] }));
    }
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

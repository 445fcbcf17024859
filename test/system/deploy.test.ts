/** The deployment kit: Kustomize overlays render and validate against the Kubernetes API schemas; compose, alerts, dashboard and image config hang together. */

import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { Service } from 'kubernetes-models/v1/Service';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const DEPLOY = path.join(REPO, 'deploy');
const OVERLAYS = path.join(DEPLOY, 'kubernetes/overlays');

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: unknown };

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};

/**
 * The kit as an administrator has it after the README's steps: a copy with a client secret written where
 * the overlays' secretGenerator reads it (secrets/ is git-ignored, so the repository has none).
 */
const KIT = ((): string => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kustomize-'));
  cpSync(path.join(DEPLOY, 'kubernetes'), dir, { recursive: true });
  for (const o of readdirSync(path.join(dir, 'overlays'))) {
    mkdirSync(path.join(dir, 'overlays', o, 'secrets'), { recursive: true });
    writeFileSync(path.join(dir, 'overlays', o, 'secrets', 'client-secret'), 'not-a-real-secret');
  }
  return dir;
})();

function render(overlay: string): Obj[] {
  const out = execFileSync('kubectl', ['kustomize', path.join(KIT, 'overlays', overlay)], { encoding: 'utf8' });
  return parseAllDocuments(out).map((d) => {
    if (d.errors.length) throw d.errors[0];
    return d.toJS() as Obj;
  });
}

function one<T = Obj>(objs: Obj[], kind: string, name?: string): T {
  const hits = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(hits, `${kind} ${name ?? ''}`).toHaveLength(1);
  return hits[0] as T;
}

function relayContainer(spec: IPodSpec): IContainer {
  const c = spec.containers.find((x) => x.image?.includes('smtp-graph-relay'));
  expect(c).toBeDefined();
  return c!;
}

/** The relay's environment as the pod would get it: the ConfigMap's data, then explicit env. */
function relayEnv(objs: Obj[], c: IContainer): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const cm = one<{ data: Record<string, string> }>(objs, 'ConfigMap', from.configMapRef!.name);
    Object.assign(env, cm.data);
  }
  for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}

const overlays = readdirSync(OVERLAYS).sort();

describe('Kubernetes manifests', () => {
  it('has the four overlays', () => {
    expect(overlays).toEqual(['central-fleet', 'central-secret', 'central-workload-identity', 'sidecar-example']);
  });

  it.each(overlays)('%s: every rendered object is valid against the Kubernetes API schema', (overlay) => {
    const objs = render(overlay);
    expect(objs.length).toBeGreaterThan(0);
    for (const o of objs) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `no schema model for ${o.apiVersion} ${o.kind}`).toBeDefined();
      expect(() => new Model!(o as never).validate(), `${o.kind} ${o.metadata.name}`).not.toThrow();
    }
    // Every object lands in one namespace, created by the overlay, and the Namespace comes first, so one
    // `kubectl apply -k` works on a fresh cluster.
    const ns = one(objs, 'Namespace').metadata.name;
    expect(objs[0]!.kind).toBe('Namespace');
    for (const o of objs.filter((x) => x.kind !== 'Namespace')) expect(o.metadata.namespace).toBe(ns);
  });

  it('rejects a manifest that breaks the schema (the validation is real)', () => {
    const bad = new StatefulSet({ metadata: { name: 'x' }, spec: { serviceName: 'x', selector: {}, template: { spec: { containers: [{ name: 'relay', image: 'i', ports: [{ containerPort: 'smtp' as never }] }] } } } });
    expect(() => bad.validate()).toThrow(/containerPort/);
  });

  it.each(['central-fleet', 'central-secret', 'central-workload-identity'])('%s: a StatefulSet whose replicas own their spool, probed and drained', (overlay) => {
    const objs = render(overlay);
    const sts = one<StatefulSet>(objs, 'StatefulSet');
    const spec = sts.spec!;
    const pod = spec.template.spec!;
    const c = relayContainer(pod);
    // Each replica's own volume, mounted where the image's config puts the spool.
    expect(spec.volumeClaimTemplates?.map((v) => v.metadata?.name)).toEqual(['spool']);
    expect(c.volumeMounts).toContainEqual({ name: 'spool', mountPath: '/var/spool/smtp-graph-relay' });
    expect(spec.serviceName).toBe(one(objs, 'Service', 'smtp-graph-relay-headless').metadata.name);
    // Probes on the admin port.
    expect(c.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'admin' });
    expect(c.livenessProbe?.httpGet).toMatchObject({ path: '/healthz', port: 'admin' });
    expect(c.ports).toEqual(expect.arrayContaining([{ name: 'smtp', containerPort: 2525 }, { name: 'admin', containerPort: 8025 }]));
    // The drain fits: preStop sleep + the relay's own grace < terminationGracePeriodSeconds.
    const sleep = Number(c.lifecycle?.preStop?.exec?.command?.[1]);
    const env = relayEnv(objs, c);
    const graceMs = Number(env.RELAY_SHUTDOWN_GRACE_MS);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(120);
    expect(sleep * 1000 + graceMs).toBeLessThan(pod.terminationGracePeriodSeconds! * 1000);
    // Unprivileged, as the image's user.
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000 });
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
    // The Service and PDB select exactly these pods.
    const labels = spec.template.metadata!.labels!;
    for (const sel of [one<Service>(objs, 'Service', 'smtp-graph-relay').spec!.selector!, one<PodDisruptionBudget>(objs, 'PodDisruptionBudget').spec?.selector?.matchLabels ?? {}]) {
      expect(Object.keys(sel).length).toBeGreaterThan(0);
      for (const [k, v] of Object.entries(sel)) expect(labels[k]).toBe(v);
    }
    expect(one<Service>(objs, 'Service', 'smtp-graph-relay').spec!.ports).toEqual([{ name: 'smtp', port: 25, targetPort: 'smtp', protocol: 'TCP' }]);
    // Remote clients must be allowed explicitly: the image's default is loopback only.
    expect(env.RELAY_ALLOWED_NETWORKS).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+/);
    // The relay's settings, as the pod gets them: a placeholder left in relay.env stops the relay, naming it;
    // with the tenant filled in they make a valid configuration, senders having mailboxes.
    const { AZURE_CLIENT_SECRET_FILE: _file, ...rest } = env;
    const image = parseYaml(readFileSync(path.join(REPO, 'config/relay.container.yaml'), 'utf8'));
    // (Credentials are checked in their own tests: workload identity's are injected into the pod at run time.)
    const build = (e: Record<string, string>) => buildConfig(image, e, REPO, { requireCredentials: false });
    if (rest.AZURE_TENANT_ID) expect(() => build(rest)).toThrow(/^AZURE_TENANT_ID: "REPLACE-with-the-directory-tenant-id" is not a tenant/);
    const cfg = build({ ...rest, ...(rest.AZURE_TENANT_ID ? { AZURE_TENANT_ID: 'contoso.onmicrosoft.com', AZURE_CLIENT_ID: '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f' } : {}) });
    expect(cfg.mailboxes.senderDomains.length + Object.keys(cfg.mailboxes.map).length).toBeGreaterThan(0);
  });

  it('central-secret: the client secret comes from a Secret mounted as a file', () => {
    const objs = render('central-secret');
    const pod = one<StatefulSet>(objs, 'StatefulSet').spec!.template.spec!;
    const c = relayContainer(pod);
    const env = relayEnv(objs, c);
    expect(env.RELAY_CREDENTIAL).toBe('secret');
    const file = env.AZURE_CLIENT_SECRET_FILE!;
    const mount = c.volumeMounts!.find((m) => file.startsWith(`${m.mountPath}/`))!;
    expect(mount.readOnly).toBe(true);
    const vol = pod.volumes!.find((v) => v.name === mount.name)!;
    // The overlay generates the Secret from secrets/client-secret; the pod mounts that very Secret.
    const secret = one<{ metadata: { name: string }; data: Record<string, string> }>(objs, 'Secret');
    expect(vol.secret?.secretName).toBe(secret.metadata.name);
    expect(secret.metadata.name).toMatch(/^smtp-graph-relay-credentials/);
    expect(Buffer.from(secret.data['client-secret']!, 'base64').toString()).toBe('not-a-real-secret');
    expect(Object.keys(env).some((k) => k === 'AZURE_CLIENT_SECRET')).toBe(false);
  });

  it('central-workload-identity: annotated ServiceAccount, labelled pods, no secret', () => {
    const objs = render('central-workload-identity');
    const sa = one<ServiceAccount>(objs, 'ServiceAccount');
    // A placeholder that says what goes there (step 2 of the overlay's instructions).
    expect(sa.metadata!.annotations!['azure.workload.identity/client-id']).toBe('REPLACE-with-the-application-client-id');
    const sts = one<StatefulSet>(objs, 'StatefulSet');
    expect(sts.spec!.template.metadata!.labels!['azure.workload.identity/use']).toBe('true');
    expect(sts.spec!.template.spec!.serviceAccountName).toBe(sa.metadata!.name);
    const env = relayEnv(objs, relayContainer(sts.spec!.template.spec!));
    expect(env.RELAY_CREDENTIAL).toBe('workload-identity');
    expect(JSON.stringify(objs)).not.toMatch(/client-secret|AZURE_CLIENT_SECRET/);
  });

  it('central-fleet: three replicas, each on its own volume, keep the limits together on the Redis beside them', () => {
    const objs = render('central-fleet');
    const sts = one<StatefulSet>(objs, 'StatefulSet');
    const pod = sts.spec!.template.spec!;
    const c = relayContainer(pod);
    const env = relayEnv(objs, c);
    // The fallback share divides by the replicas there are.
    expect(sts.spec!.replicas).toBe(3);
    expect(Number(env.RELAY_FLEET_REPLICAS)).toBe(sts.spec!.replicas);
    expect(c.env).toContainEqual({ name: 'RELAY_REPLICA', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } });
    // The URL names the Redis Service, which selects the Redis pods (and the relay's Service and budget do not).
    const svc = one<Service>(objs, 'Service', 'smtp-graph-relay-redis');
    const url = new URL(env.RELAY_FLEET_REDIS_URL!);
    expect(url.hostname).toBe(svc.metadata!.name);
    expect(Number(url.port)).toBe(svc.spec!.ports![0]!.port);
    const redis = one<Deployment>(objs, 'Deployment', 'smtp-graph-relay-redis');
    const redisLabels = redis.spec!.template.metadata!.labels!;
    for (const [k, v] of Object.entries(svc.spec!.selector!)) expect(redisLabels[k]).toBe(v);
    const relaySelector = one<Service>(objs, 'Service', 'smtp-graph-relay').spec!.selector!;
    expect(Object.entries(relaySelector).every(([k, v]) => redisLabels[k] === v)).toBe(false);
    expect(Object.entries(one<PodDisruptionBudget>(objs, 'PodDisruptionBudget').spec!.selector!.matchLabels!).every(([k, v]) => redisLabels[k] === v)).toBe(false);
    // Redis keeps nothing on disk (leases expire in seconds), unprivileged like the relay.
    expect(redis.spec!.template.spec!.containers[0]!.args).toEqual(expect.arrayContaining(['--save', '', '--appendonly', 'no']));
    expect(redis.spec!.template.spec!.securityContext).toMatchObject({ runAsNonRoot: true });
    // The pod's settings make a valid fleet configuration.
    const image = parseYaml(readFileSync(path.join(REPO, 'config/relay.container.yaml'), 'utf8'));
    const { AZURE_CLIENT_SECRET_FILE: _file, ...rest } = env; // the Secret's file exists only in the pod
    const filled = { ...rest, AZURE_TENANT_ID: 'contoso.onmicrosoft.com', AZURE_CLIENT_ID: '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f', RELAY_REPLICA: 'smtp-graph-relay-0' };
    const cfg = buildConfig(image, filled, REPO, { requireCredentials: false });
    expect(cfg.fleet).toMatchObject({ redisUrl: 'redis://smtp-graph-relay-redis:6379', replicas: 3, replica: 'smtp-graph-relay-0' });
  });

  it('sidecar-example: the relay beside the application, on the pod loopback only', () => {
    const objs = render('sidecar-example');
    const dep = one<Deployment>(objs, 'Deployment');
    const pod = dep.spec!.template.spec!;
    expect(pod.containers).toHaveLength(2);
    const c = relayContainer(pod);
    const env = relayEnv(objs, c);
    expect(env.RELAY_SMTP_HOST).toBe('127.0.0.1');
    expect(env.RELAY_ALLOWED_NETWORKS).toBe('127.0.0.0/8,::1/128');
    const app = pod.containers.find((x) => x !== c)!;
    expect(app.env).toContainEqual({ name: 'SMTP_PORT', value: '2525' });
    expect(c.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(c.livenessProbe?.httpGet?.path).toBe('/healthz');
    // The relay's settings, as the pod gets them, make a valid configuration.
    const { AZURE_CLIENT_SECRET_FILE, ...rest } = env; // the Secret's file exists only in the pod
    expect(AZURE_CLIENT_SECRET_FILE).toMatch(/^\/var\/run\/secrets\//);
    const image = parseYaml(readFileSync(path.join(REPO, 'config/relay.container.yaml'), 'utf8'));
    expect(() => buildConfig(image, { ...rest, AZURE_CLIENT_SECRET: 'x' }, REPO)).toThrow(/^AZURE_TENANT_ID: "REPLACE-/);
    const filled = { ...rest, AZURE_CLIENT_SECRET: 'x', AZURE_TENANT_ID: 'contoso.onmicrosoft.com', AZURE_CLIENT_ID: '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f' };
    const cfg = buildConfig(image, filled, REPO);
    expect(cfg.listeners[0]).toMatchObject({ host: '127.0.0.1', port: 2525 });
    // The Secret comes from the overlay, generated in the application's namespace.
    expect(one<{ metadata: { namespace: string } }>(objs, 'Secret').metadata.namespace).toBe('mail-demo');
    expect(cfg.admin).toMatchObject({ enabled: true, host: '0.0.0.0', port: 8025 }); // no admin.auth: the status page stays shut off loopback, probes and metrics work
  });
});

describe('systemd unit (a Linux VM without containers)', () => {
  const unit = readFileSync(path.join(DEPLOY, 'systemd/smtp-graph-relay.service'), 'utf8');

  it('passes systemd-analyze verify, pointed at this checkout', () => {
    let analyze: string;
    try {
      analyze = execFileSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).trim();
    } catch {
      throw new Error('systemd-analyze is not installed (Debian package systemd; .ci/run installs it)');
    }
    const dir = mkdtempSync(path.join(tmpdir(), 'unit-'));
    const file = path.join(dir, 'smtp-graph-relay.service');
    // The unit as installed, with node and the relay where this machine has them.
    writeFileSync(file, unit.replace('/usr/bin/node /opt/smtp-graph-relay/dist/cli.js', `${process.execPath} ${path.join(REPO, 'dist/cli.js')}`).replace(/^Documentation=.*$/m, 'Documentation=man:systemd.exec(5)'));
    const res = spawnSync(analyze, ['verify', file], { encoding: 'utf8' });
    expect(res.stderr.trim()).toBe('');
    expect(res.status).toBe(0);
  });

  it('runs as its own user with the spool in its StateDirectory, hardened, restarted unless the configuration is wrong', () => {
    const directives = new Map<string, string[]>();
    for (const line of unit.split('\n')) {
      const m = /^([A-Za-z]+)=(.*)$/.exec(line);
      if (m) directives.set(m[1]!, [...(directives.get(m[1]!) ?? []), m[2]!]);
    }
    const one = (k: string): string | undefined => directives.get(k)?.[0];
    expect(one('DynamicUser')).toBe('yes');
    expect(one('StateDirectory')).toBe('smtp-graph-relay');
    expect(directives.get('Environment')).toEqual(expect.arrayContaining(['RELAY_SPOOL_DIR=/var/lib/smtp-graph-relay/spool', 'RELAY_CONFIG=/etc/smtp-graph-relay/relay.yaml', 'AZURE_CLIENT_SECRET_FILE=%d/client-secret']));
    expect(one('LoadCredential')).toBe('client-secret:/etc/smtp-graph-relay/client-secret');
    for (const [k, v] of [['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['NoNewPrivileges', 'yes'], ['PrivateTmp', 'yes'], ['Restart', 'on-failure'], ['RestartPreventExitStatus', '2'], ['KillSignal', 'SIGTERM']]) expect(one(k!), k).toBe(v);
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('CapabilityBoundingSet')).toBe('CAP_NET_BIND_SERVICE');
  });
});

describe('secrets stay out of git', () => {
  it('ignores the files the README tells administrators to write (compose and kustomize secrets)', () => {
    const paths = ['deploy/secrets/azure_client_secret', 'deploy/kubernetes/overlays/central-secret/secrets/client-secret', 'deploy/kubernetes/overlays/sidecar-example/secrets/client-secret'];
    const out = execFileSync('git', ['check-ignore', ...paths], { cwd: REPO, encoding: 'utf8' });
    expect(out.trim().split('\n')).toEqual(paths);
  });
});

describe('container image configuration', () => {
  it('config/relay.container.yaml: loopback-only SMTP on all interfaces, spool on the volume, admin for probes', () => {
    const raw = parseYaml(readFileSync(path.join(REPO, 'config/relay.container.yaml'), 'utf8'));
    const creds = { AZURE_TENANT_ID: '6f1d3c2b-8a4e-4b7f-9c5d-2e0a1b3c4d5e', AZURE_CLIENT_ID: '0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f', AZURE_CLIENT_SECRET: 's' };
    // No "accept anything" default: without a sender mapping the image says what to set, and does not start.
    expect(() => buildConfig(raw, creds, REPO)).toThrow(/^mailboxes: no sender can be given a mailbox .*RELAY_SENDER_DOMAINS.*RELAY_MAILBOX_MAP.*RELAY_FALLBACK_MAILBOX/);
    const cfg = buildConfig(raw, { ...creds, RELAY_SENDER_DOMAINS: 'contoso.example' }, REPO);
    expect(cfg.mailboxes.senderDomains).toEqual(['contoso.example']);
    expect(cfg.listeners).toHaveLength(1);
    expect(cfg.listeners[0]).toMatchObject({ host: '0.0.0.0', port: 2525, allowedNetworks: ['127.0.0.0/8', '::1/128'] });
    expect(cfg.spool.directory).toBe('/var/spool/smtp-graph-relay');
    expect(cfg.admin).toMatchObject({ enabled: true, host: '0.0.0.0', port: 8025 }); // no admin.auth: the status page stays shut off loopback, probes and metrics work
    expect(cfg.delivery.mode).toBe('graph');
    // The drain is sized by the deployment, next to its stop timeout.
    expect(buildConfig(raw, { ...creds, RELAY_FALLBACK_MAILBOX: 'noreply@contoso.example', RELAY_SHUTDOWN_GRACE_MS: '90000' }, REPO).shutdownGraceMs).toBe(90_000);
  });

  it('Dockerfile: multi-stage on node:24-slim, non-root, volume, ports, healthcheck, the shipped config', () => {
    const df = readFileSync(path.join(REPO, 'Dockerfile'), 'utf8');
    const froms = [...df.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const f of froms) expect(f).toBe('node:24-slim');
    expect(df).toMatch(/npm ci --omit=dev/);
    expect(df).toMatch(/^USER node/m);
    expect(df).toMatch(/^VOLUME \["\/var\/spool\/smtp-graph-relay", "\/var\/lib\/smtp-graph-relay\/capture"\]/m);
    expect(df).toMatch(/^EXPOSE 2525 8025/m);
    expect(df).toMatch(/^HEALTHCHECK .*\n?.*\/healthz/m);
    expect(df).toMatch(/COPY config\/relay\.container\.yaml \/etc\/smtp-graph-relay\/relay\.yaml/);
    // The configuration comes from RELAY_CONFIG, so every command (run, queue …) finds it without flags.
    expect(df).toMatch(/RELAY_CONFIG=\/etc\/smtp-graph-relay\/relay\.yaml/);
    expect(df).toMatch(/CMD \["run"\]/);
    const ignore = readFileSync(path.join(REPO, '.dockerignore'), 'utf8').split('\n');
    for (const p of ['node_modules', 'dist', 'spool', '.git']) expect(ignore).toContain(p);
  });
});

describe('docker compose', () => {
  const compose = parseYaml(readFileSync(path.join(DEPLOY, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, { environment: Record<string, string>; secrets: string[]; volumes: string[]; stop_grace_period: string }>;
    secrets: Record<string, { file: string }>;
    volumes: Record<string, unknown>;
  };
  const relay = compose.services.relay!;

  it('keeps the spool on a named volume and reads the secret from a file', () => {
    const [vol, target] = relay.volumes[0]!.split(':');
    expect(Object.keys(compose.volumes)).toContain(vol);
    expect(target).toBe('/var/spool/smtp-graph-relay');
    const secretFile = relay.environment.AZURE_CLIENT_SECRET_FILE!;
    const name = path.basename(secretFile);
    expect(secretFile).toBe(`/run/secrets/${name}`);
    expect(relay.secrets).toContain(name);
    expect(compose.secrets[name]?.file).toBeDefined();
    expect(relay.environment.AZURE_CLIENT_SECRET).toBeUndefined();
  });

  it('passes the sender mapping variables through, with no "accept anything" value of its own', () => {
    for (const k of ['RELAY_SENDER_DOMAINS', 'RELAY_MAILBOX_MAP', 'RELAY_FALLBACK_MAILBOX']) expect(relay.environment[k], k).toBe(`\${${k}:-}`);
  });

  it('gives the relay time to drain on stop', () => {
    expect(Number(relay.environment.RELAY_SHUTDOWN_GRACE_MS) / 1000).toBeLessThan(Number(/^(\d+)s$/.exec(relay.stop_grace_period)![1]));
  });
});

describe('Prometheus alerts and Grafana dashboard', () => {
  const metricsTs = readFileSync(path.join(REPO, 'src/observability/metrics.ts'), 'utf8');
  const known = new Set([...metricsTs.matchAll(/'(relay_[a-z_]+)'/g)].map((m) => m[1]!));
  const used = (expr: string): string[] => [...expr.matchAll(/\b(relay_[a-z_]+?)(?:_bucket|_sum|_count)?\b(?=[{[\s)]|$)/g)].map((m) => m[1]!);

  it('alert rules are well formed, cover the required conditions, and use only real metrics', () => {
    const doc = parseYaml(readFileSync(path.join(DEPLOY, 'prometheus/alerts.yml'), 'utf8')) as { groups: { name: string; rules: { alert: string; expr: string; labels: { severity: string }; annotations: { summary: string } }[] }[] };
    const rules = doc.groups.flatMap((g) => g.rules);
    for (const r of rules) {
      expect(r.alert).toMatch(/^[A-Za-z]+$/);
      expect(r.labels.severity).toMatch(/^(critical|warning|info)$/);
      expect(r.annotations.summary).toBeTruthy();
      for (const m of used(r.expr)) expect(known, `${r.alert}: ${m}`).toContain(m);
    }
    const all = rules.map((r) => r.expr).join('\n');
    expect(all).toContain('relay_queue_oldest_message_age_seconds{state="queued"}');
    expect(all).toContain('relay_messages_dead_lettered_total');
    expect(all).toContain('relay_token_acquisitions_total{result="failure"}');
    expect(all).toContain('relay_graph_throttled_total');
    // A fleet's quiet failures: a silent device, dead letters present, a mailbox paused for long.
    expect(all).toContain('relay_devices_silent');
    expect(all).toContain('relay_queue_messages{state="dead"}');
    expect(all).toContain('relay_mailbox_longest_pause_seconds');
  });

  it('the dashboard charts every relay metric and only real ones', () => {
    const dash = JSON.parse(readFileSync(path.join(DEPLOY, 'grafana/smtp-graph-relay.json'), 'utf8')) as { uid: string; panels: { type: string; targets?: { expr: string }[] }[] };
    expect(dash.uid).toBe('smtp-graph-relay');
    const exprs = dash.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);
    const charted = new Set(exprs.flatMap(used));
    for (const m of charted) expect(known).toContain(m);
    for (const m of known) expect(charted, m).toContain(m);
  });
});

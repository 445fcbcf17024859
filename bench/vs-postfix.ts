/**
 * The relay against Postfix at what Postfix does, in one run, with one client for every server: Postfix's
 * own smtp-source, 20 sessions, 10 KB messages, rounds interleaved, medians. Every server delivers while it
 * accepts: Postfix to smtp-sink, the relay to a Graph emulator that answers at once; the bare fsync'd
 * smtp-server (no delivery) is the ceiling of the SMTP library itself. Also memory idle after start, and
 * peak: RSS of the relay and the bare server, PSS summed over Postfix's processes.
 *
 *   npm run bench:vs-postfix [-- --n 2000 --rounds 5 --sessions 20 --size 10240 --far-side emulator|sink]
 *
 * `--far-side sink`: the relay delivers to bench/graph-sink.ts (sendMail answered 202 unread, as smtp-sink
 * answers Postfix) instead of the strict emulator, whose checks cost the shared cores what Graph's servers
 * would spend; tokens still come from the emulator.
 *
 * Postfix runs as an instance of its own (`postfix -c` with a private configuration and queue under a
 * temporary folder), never touching the system's instance. Needs root (Postfix's master) and Debian's
 * postfix package: `apt-get install postfix` (choose "No configuration").
 */

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { args, cleanup, fmt, machine, median, num, procFigures, sleep, startBareServer, startEmulatorChild, startGraphSink, startRelay, table, type Child } from './lib.js';

const run = promisify(execFile);
const a = args({ n: 2000 }, ['rounds', 'sessions', 'size', 'far-side']);
const rounds = Math.max(1, num(a.values.rounds, 5));
const sessions = Math.max(1, num(a.values.sessions, 20));
const size = Math.max(100, num(a.values.size, 10_240));
const farSide = a.values['far-side'] ?? 'emulator';
if (farSide !== 'emulator' && farSide !== 'sink') throw new Error('--far-side is emulator or sink');
const SMTP_SOURCE = '/usr/sbin/smtp-source';
const SMTP_SINK = '/usr/sbin/smtp-sink';
const POSTFIX = '/usr/sbin/postfix';
const tmpRoot = tmpdir();
let stopping = false;
/** Synchronous stops for an abort: a Postfix master left behind would outlive the benchmark. */
const onAbort: (() => void)[] = [];

if (![SMTP_SOURCE, SMTP_SINK, POSTFIX].every((f) => existsSync(f))) {
  process.stderr.write('vs-postfix: Postfix is not installed. Install it with:\n  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections\n  DEBIAN_FRONTEND=noninteractive apt-get install -y postfix\n');
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('vs-postfix: Postfix\'s master must start as root; run this as root.\n');
  process.exit(2);
}

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

/**
 * Memory of a process and all its descendants (Postfix is a dozen processes), as the sum of their PSS:
 * a sum of RSS would count the pages they share (the binary, libraries) once per process.
 */
function treePssMB(pid: number): number {
  return treeSum(pid, (p) => Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'))?.[1] ?? 0), 0) / 1024;
}

/**
 * CPU seconds of a process tree, every process that ever ran in it included: each live process's own
 * time plus what it reaped of its children (Postfix's master reaps smtpd, cleanup, smtp as they exit);
 * `sys` is the part spent in the kernel (file system, TCP over loopback, fsync).
 */
function treeCpuS(pid: number): { total: number; sys: number } {
  let sys = 0;
  const total = treeSum(
    pid,
    (p) => {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      sys += Number(f[12]) + Number(f[14]); // stime cstime
      return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]); // utime stime cutime cstime
    },
    null,
  );
  return { total: total / 100, sys: sys / 100 };
}

/** The whole machine's CPU counters (/proc/stat): busy and total ticks, to tell how busy both cores were. */
function machineTicks(): { busy: number; total: number } {
  const t = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = t.reduce((x, y) => x + y, 0);
  return { busy: total - t[3]! - t[4]!, total }; // idle and iowait are not busy
}

/**
 * `value` summed over a process and its descendants. A process whose value cannot be read (gone) counts
 * `unreadable`; null: it counts nothing and its children are not visited.
 */
function treeSum(pid: number, value: (p: number) => number, unreadable: number | null): number {
  let sum = 0;
  const visit = (p: number): void => {
    try {
      sum += value(p);
    } catch {
      if (unreadable === null) return;
      sum += unreadable;
    }
    let kids: string[] = [];
    try {
      kids = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      // gone
    }
    for (const k of kids) visit(Number(k));
  };
  visit(pid);
  return sum;
}

/** A private Postfix: loopback only, no DNS, everything relayed to smtp-sink, the queue in `dir`. */
async function startPostfix(dir: string, smtpPort: number, sinkPort: number): Promise<{ masterPid: () => number; stop(): Promise<void> }> {
  const etc = path.join(dir, 'etc');
  mkdirSync(etc, { recursive: true });
  const main = {
    compatibility_level: '3.6',
    queue_directory: path.join(dir, 'spool'),
    data_directory: path.join(dir, 'data'),
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    myhostname: 'postfix.bench.example',
    mydestination: '',
    mynetworks: '127.0.0.0/8',
    relay_domains: '',
    relayhost: `[127.0.0.1]:${sinkPort}`,
    smtp_host_lookup: 'native',
    smtpd_peername_lookup: 'no',
    smtp_dns_support_level: 'disabled',
    smtpd_recipient_restrictions: 'permit_mynetworks, reject',
    default_process_limit: '200',
    // One message per connection to the sink, as the relay makes one request per message.
    smtp_connection_cache_on_demand: 'yes',
    maillog_file: path.join(dir, 'maillog'),
    maillog_file_prefixes: dir,
    alias_maps: '',
    alias_database: '',
    local_recipient_maps: '',
    biff: 'no',
  };
  writeFileSync(path.join(etc, 'main.cf'), Object.entries(main).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
  const master = readFileSync('/etc/postfix/master.cf', 'utf8').replace(/^smtp\s+inet\s.*$/m, `127.0.0.1:${smtpPort} inet n - y - - smtpd`);
  writeFileSync(path.join(etc, 'master.cf'), master);
  for (const f of ['dynamicmaps.cf', 'postfix-files']) if (existsSync(`/etc/postfix/${f}`)) writeFileSync(path.join(etc, f), readFileSync(`/etc/postfix/${f}`));
  if (existsSync('/etc/postfix/postfix-files.d')) execFileSync('cp', ['-r', '/etc/postfix/postfix-files.d', etc]);
  // Postfix's daemons run as the postfix user: the folders above its queue must let it through.
  for (let d = dir; d !== path.dirname(d) && d.startsWith(tmpRoot); d = path.dirname(d)) chmodSync(d, 0o755);
  mkdirSync(path.join(dir, 'spool'), { recursive: true });
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  execFileSync('chown', ['postfix', path.join(dir, 'data')]);
  // `postfix start` checks the queue and makes its folders, with the owners and modes Postfix wants.
  await run(POSTFIX, ['-c', etc, 'start']);
  onAbort.push(() => {
    try {
      execFileSync(POSTFIX, ['-c', etc, 'stop'], { stdio: 'ignore' });
    } catch {
      // already stopped
    }
  });
  const pidFile = path.join(dir, 'spool', 'pid', 'master.pid');
  for (let i = 0; i < 100 && !existsSync(pidFile); i++) await sleep(50);
  const masterPid = (): number => Number(readFileSync(pidFile, 'utf8').trim());
  return {
    masterPid,
    async stop() {
      await run(POSTFIX, ['-c', etc, 'stop']).catch(() => undefined);
    },
  };
}

/** smtp-source against `port`: n messages in `sessions` parallel sessions; `reuse` keeps each session for many. */
async function source(port: number, n: number, reuse: boolean): Promise<number> {
  const t0 = process.hrtime.bigint();
  const flags = ['-s', String(sessions), '-m', String(n), '-l', String(size), '-f', 'bench@bench.example', '-t', 'rcpt@bench.example', '-M', 'client.bench.example', ...(reuse ? ['-d'] : []), `127.0.0.1:${port}`];
  await run(SMTP_SOURCE, flags, { maxBuffer: 1 << 20 });
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/** Waits until Postfix's queue is empty again (everything handed to smtp-sink), so rounds do not overlap. */
async function postfixDrained(dir: string): Promise<void> {
  const queues = ['incoming', 'active', 'deferred', 'maildrop'].map((q) => path.join(dir, 'spool', q));
  const count = (d: string): number => (existsSync(d) ? readdirSync(d, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length : 0);
  for (let i = 0; i < 1200 && queues.some((q) => count(q) > 0); i++) await sleep(100);
  if (queues.some((q) => count(q) > 0)) throw new Error(`Postfix's queue did not drain in 120 s: see ${path.join(dir, 'maillog')} (run with --keep)`);
}

async function main(): Promise<void> {
  const dir = a.dir;
  process.stdout.write(`vs-postfix: ${a.n} messages of ${size} B per round, ${sessions} sessions (smtp-source), ${rounds} rounds interleaved, the relay delivering to the Graph ${farSide}; ${machine()}\n\n`);
  const sinkPort = await freePort();
  const pfPort = await freePort();
  // smtp-sink refuses to run as root without -u; it drops to the postfix user.
  const sink: ChildProcess = spawn(SMTP_SINK, ['-u', 'postfix', '-c', `127.0.0.1:${sinkPort}`, '1000'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let sinkErr = '';
  sink.stderr!.on('data', (d: Buffer) => (sinkErr += d.toString()));
  sink.on('exit', (code) => {
    if (stopping) return;
    process.stderr.write(`vs-postfix: smtp-sink exited (${code}): ${sinkErr.trim()}\n`);
    for (const stop of onAbort) stop();
    process.exit(1);
  });
  const graphSinkPort = farSide === 'sink' ? await freePort() : 0;
  const emu = await startEmulatorChild({ latencyMs: 0, mailboxConcurrency: 1000, otherResources: graphSinkPort ? [`https://127.0.0.1:${graphSinkPort}`] : [] });
  const postfix = await startPostfix(path.join(dir, 'postfix'), pfPort, sinkPort);
  const sinkGraph = graphSinkPort ? await startGraphSink(emu.graph.caCertPath, graphSinkPort) : null;
  const relay = await startRelay({ dir: path.join(dir, 'relay'), graph: sinkGraph ? { ...emu.graph, graphUrl: sinkGraph.graphUrl } : emu.graph, extra: { limits: { maxMessagesPerSession: 100_000 } } });
  const bare = await startBareServer(path.join(dir, 'bare'));
  await sleep(2000);
  const idle = { postfix: treePssMB(postfix.masterPid()), relay: procFigures(relay.pid).rssMB, bare: procFigures(bare.pid).rssMB };
  const servers: { name: string; port: number; peak: number; pid: () => number; settle: () => Promise<void> }[] = [
    { name: 'postfix', port: pfPort, peak: 0, pid: () => postfix.masterPid(), settle: () => postfixDrained(path.join(dir, 'postfix')) },
    { name: 'relay', port: relay.port, peak: 0, pid: () => relay.pid, settle: async () => relay.waitFor('delivered', relay.counts['received'] ?? 0, 600_000) },
    { name: 'bare', port: bare.port, peak: 0, pid: () => bare.pid, settle: async () => undefined },
  ];
  const rates: Record<string, number[]> = {};
  const cpuMs: Record<string, number[]> = {};
  const sysShare: Record<string, number[]> = {};
  const machineBusy: Record<string, number[]> = {};
  const farCpuMs: Record<string, number[]> = {};
  try {
    for (const reuse of [false, true]) {
      // Warm-up, as a server in service is warm: one round each, not timed.
      for (const s of servers) {
        await source(s.port, Math.min(a.n, 1000), reuse);
        await s.settle();
      }
      for (let r = 0; r < rounds; r++) {
        for (const s of r % 2 ? [...servers].reverse() : servers) {
          const sampler = setInterval(() => (s.peak = Math.max(s.peak, s.name === 'postfix' ? treePssMB(s.pid()) : procFigures(s.pid()).rssMB)), 100);
          const far = s.name === 'postfix' ? sink.pid! : s.name === 'relay' ? (sinkGraph?.pid ?? emu.pid) : 0;
          const cpu0 = [treeCpuS(s.pid()), far ? treeCpuS(far) : { total: 0, sys: 0 }] as const;
          const m0 = machineTicks();
          const rate = await source(s.port, a.n, reuse);
          const m1 = machineTicks();
          clearInterval(sampler);
          const key = `${s.name}/${reuse ? 'reuse' : 'per-message'}`;
          (rates[key] ??= []).push(rate);
          await s.settle();
          // CPU per message over accepting and delivering all of the round (the settle included).
          const cpu1 = treeCpuS(s.pid());
          (cpuMs[key] ??= []).push(((cpu1.total - cpu0[0].total) * 1000) / a.n);
          (sysShare[key] ??= []).push((cpu1.sys - cpu0[0].sys) / (cpu1.total - cpu0[0].total));
          (machineBusy[key] ??= []).push((m1.busy - m0.busy) / (m1.total - m0.total));
          (farCpuMs[key] ??= []).push(far ? ((treeCpuS(far).total - cpu0[1].total) * 1000) / a.n : NaN);
        }
      }
    }
  } finally {
    stopping = true;
    await Promise.all([postfix.stop(), relay.stop(), bare.stop(), emu.stop(), sinkGraph?.stop()]);
    sink.kill();
    cleanup(dir, a.keep);
  }
  report(rates, idle, servers, { cpuMs, sysShare, machineBusy, farCpuMs });
}

interface CpuFigures {
  cpuMs: Record<string, number[]>;
  sysShare: Record<string, number[]>;
  machineBusy: Record<string, number[]>;
  farCpuMs: Record<string, number[]>;
}

function report(rates: Record<string, number[]>, idle: Record<string, number>, servers: { name: string; peak: number }[], cpu: CpuFigures): void {
  const { cpuMs, farCpuMs } = cpu;
  const m = (k: string): number => median(rates[k] ?? []);
  const rows = (['per-message', 'reuse'] as const).map((mode) => ({
    'msgs/s': mode === 'reuse' ? 'connections reused' : 'one connection per message',
    Postfix: fmt(m(`postfix/${mode}`), 0),
    'this relay': `${fmt(m(`relay/${mode}`), 0)} (${fmt(m(`relay/${mode}`) / m(`postfix/${mode}`), 2)}×)`,
    'bare smtp-server + fsync (no delivery)': fmt(m(`bare/${mode}`), 0),
  }));
  process.stdout.write(`${table(rows)}\n`);
  const c = (rec: Record<string, number[]>, k: string): string => fmt(median(rec[k] ?? []), 2);
  const pct = (rec: Record<string, number[]>, k: string): string => `${fmt(100 * median(rec[k] ?? []), 0)} %`;
  const cpuRows = (['per-message', 'reuse'] as const).map((mode) => ({
    'CPU ms per message': mode === 'reuse' ? 'connections reused' : 'one connection per message',
    'Postfix (all its processes)': `${c(cpuMs, `postfix/${mode}`)} (${pct(cpu.sysShare, `postfix/${mode}`)} kernel)`,
    'this relay': `${c(cpuMs, `relay/${mode}`)} (${pct(cpu.sysShare, `relay/${mode}`)} kernel)`,
    bare: c(cpuMs, `bare/${mode}`),
    'smtp-sink (Postfix\'s far side)': c(farCpuMs, `postfix/${mode}`),
    [farSide === 'sink' ? 'Graph sink (the relay\'s far side)' : 'Graph emulator (the relay\'s far side)']: c(farCpuMs, `relay/${mode}`),
  }));
  process.stdout.write(`${table(cpuRows)}\n(user + system CPU over accepting and delivering a round, divided by its messages; Postfix's includes the processes its master reaped; "kernel": the system part)\n`);
  const busy = (['per-message', 'reuse'] as const).map((mode) => `${mode === 'reuse' ? 'reused' : 'one per message'}: ${['postfix', 'relay', 'bare'].map((n) => `${n} ${pct(cpu.machineBusy, `${n}/${mode}`)}`).join(', ')}`);
  process.stdout.write(`machine CPU busy while smtp-source ran (all ${availableParallelism()} cores, everything on them): ${busy.join('; ')}\n\n`);
  const peak = (n: string): number => servers.find((s) => s.name === n)!.peak;
  process.stdout.write(`${table([{ 'memory (MB)': 'idle after start', Postfix: fmt(idle['postfix']!, 0), 'this relay': fmt(idle['relay']!, 0), bare: fmt(idle['bare']!, 0) }, { 'memory (MB)': 'peak during the runs', Postfix: fmt(peak('postfix'), 0), 'this relay': fmt(peak('relay'), 0), bare: fmt(peak('bare'), 0) }])}\n`);
  process.stdout.write(`rounds, msgs/s in run order: ${Object.entries(rates).map(([k, v]) => `${k} ${v.map((x) => fmt(x, 0)).join(' ')}`).join('; ')}\n\n`);
  const per = m('relay/per-message') / m('postfix/per-message');
  const reuse = m('relay/reuse') / m('postfix/reuse');
  process.stdout.write(
    `SUMMARY vs-postfix${farSide === 'sink' ? ' (Graph sink)' : ''}: one connection per message ${fmt(per, 2)}× Postfix (target >= 1.0: ${per >= 1 ? 'PASS' : 'MISS'}); reused ${fmt(reuse, 2)}× Postfix (target >= 1.5: ${reuse >= 1.5 ? 'PASS' : 'MISS'}); CPU ms/msg reused relay ${fmt(median(cpuMs['relay/reuse'] ?? []), 2)} vs Postfix ${fmt(median(cpuMs['postfix/reuse'] ?? []), 2)}; relay RSS idle ${fmt(idle['relay']!, 0)} MB (target <= 60: ${idle['relay']! <= 60 ? 'PASS' : 'MISS'}), peak ${fmt(peak('relay'), 0)} MB (target <= 110: ${peak('relay') <= 110 ? 'PASS' : 'MISS'})\n`,
  );
}

await main();

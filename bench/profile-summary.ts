/**
 * Summarizes a V8 .cpuprofile (node --cpu-prof): top functions by self time, and self time by file.
 *   npx tsx bench/profile-summary.ts FILE.cpuprofile [--top 25]
 */

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

const REPO = path.resolve(import.meta.dirname, '..');

/** A profile frame's script, short: repository-relative, or package-relative under node_modules; '(native)' for none. */
export function shortUrl(url: string): string {
  if (!url) return '(native)';
  let u = url.replace(/^file:\/\//, '');
  if (u.startsWith(REPO)) u = u.slice(REPO.length + 1);
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) u = u.slice(nm + 'node_modules/'.length);
  return u;
}

export function summarize(file: string, top = 25): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  // Each sample's time is the delta to the next sample.
  for (let i = 0; i < samples.length; i++) {
    const dt = deltas[i + 1] ?? 0;
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + Math.max(0, dt));
  }
  const total = [...self.values()].reduce((x, y) => x + y, 0) || 1;
  let idle = 0;
  const fnTime = new Map<string, number>();
  const fileTime = new Map<string, number>();
  const pkgTime = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    const where = shortUrl(url);
    const key = `${functionName || '(anonymous)'}  ${where}${url ? `:${lineNumber + 1}` : ''}`;
    fnTime.set(key, (fnTime.get(key) ?? 0) + us);
    const fileKey = url ? where : functionName;
    fileTime.set(fileKey, (fileTime.get(fileKey) ?? 0) + us);
    const pkg = !url ? `(native) ${functionName}` : url.includes('node_modules/') ? (/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? '?') : url.startsWith('node:') ? 'node: internals' : url.includes('/dist/') ? 'relay dist/' : where;
    pkgTime.set(pkg, (pkgTime.get(pkg) ?? 0) + us);
  }
  const busy = total - idle;
  // Inclusive time of the relay's own functions (dist/): a function's self time plus its callees', counted
  // once per sample even when it recurses.
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const incl = new Map<string, number>();
  for (const [id, us] of self) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)!;
      const { functionName, url, lineNumber } = n.callFrame;
      if (!url.includes('/dist/')) continue;
      const key = `${functionName || '(anonymous)'}  ${shortUrl(url)}:${lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      incl.set(key, (incl.get(key) ?? 0) + us);
    }
  }
  const line = (us: number, label: string): string => `${((us / busy) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${label}`;
  const out: string[] = [];
  out.push(`wall ${((p.endTime - p.startTime) / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(2)} s (${((busy / total) * 100).toFixed(0)}%), idle ${(idle / 1e6).toFixed(2)} s; % of busy time`);
  out.push('top functions by self time:');
  for (const [k, us] of [...fnTime].sort((x, y) => y[1] - x[1]).slice(0, top)) out.push(line(us, k));
  out.push('relay and library functions by inclusive time (self + callees; async continuations count where they resume):');
  for (const [k, us] of [...incl].sort((x, y) => y[1] - x[1]).slice(0, top)) out.push(line(us, k));
  out.push('self time by package (native = bindings: fs, TLS, GC):');
  for (const [k, us] of [...pkgTime].sort((x, y) => y[1] - x[1]).slice(0, 15)) out.push(line(us, k));
  out.push('self time by file:');
  for (const [k, us] of [...fileTime].sort((x, y) => y[1] - x[1]).slice(0, Math.min(top, 15))) out.push(line(us, k));
  return out.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const files = process.argv.slice(2).filter((x) => !x.startsWith('--'));
  const topIdx = process.argv.indexOf('--top');
  const top = topIdx > 0 ? Number(process.argv[topIdx + 1]) : 25;
  if (files.length === 0) {
    process.stderr.write('usage: npx tsx bench/profile-summary.ts FILE.cpuprofile [--top 25]\n');
    process.exit(2);
  }
  for (const f of files) {
    if (/^\d+$/.test(f)) continue;
    process.stdout.write(`${f}\n${summarize(f, top)}\n\n`);
  }
}

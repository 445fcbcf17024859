/**
 * Loaded into a benchmark child with `--import` (bench/alloc.ts sets it through NODE_OPTIONS): between two
 * SIGUSR2 signals it samples every allocation on the JS heap, including objects the GC has already freed
 * (which V8's --heap-prof leaves out, and which are the garbage that costs collector time), then writes the
 * profile to $BENCH_ALLOC_OUT. "$BENCH_ALLOC_OUT.started" appears once sampling runs.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

const out = process.env.BENCH_ALLOC_OUT;
if (out) {
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.enable');
  let sampling = false;
  process.on('SIGUSR2', () => {
    const step = sampling ? stop() : start();
    step.catch((err) => process.stderr.write(`alloc-hook: ${err}\n`));
  });
  async function start() {
    sampling = true;
    await session.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    writeFileSync(`${out}.started`, '');
  }
  async function stop() {
    sampling = false;
    const { profile } = await session.post('HeapProfiler.stopSampling');
    // Written beside, then renamed: the benchmark waits for the name to appear.
    writeFileSync(`${out}.part`, JSON.stringify(profile));
    renameSync(`${out}.part`, out);
  }
}

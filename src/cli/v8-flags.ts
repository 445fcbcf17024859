/**
 * V8 settings for the relay's process, set before any other module loads (src/cli.ts imports this first).
 *
 * V8 compiles WebAssembly twice: at once, plainly (Liftoff), then optimized (TurboFan) for the functions
 * that have run enough. The relay's WebAssembly is SQLite (the history's worker) and undici's HTTP parser.
 * With V8's default budget, the first seconds of SQLite (opening the file, the schema, the devices) already
 * optimize much of it, and that code stays: some 20 MB of an idle relay, on Node 20 and 24 alike, for code
 * that is off the mail's path. A budget 100 times V8's leaves optimizing to the functions a busy relay
 * keeps hot. Set after a first module has been compiled, it no longer changes anything: hence here.
 * `npm run bench:idle` measures it.
 */

import { setFlagsFromString } from 'node:v8';

const WASM_TIERING_BUDGET = 180_000_000;

setFlagsFromString(`--wasm-tiering-budget=${WASM_TIERING_BUDGET}`);

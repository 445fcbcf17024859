import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(import.meta.dirname, '../..');
const importsOf = (file: string): string[] =>
  readFileSync(path.join(REPO, file), 'utf8')
    .split('\n')
    .filter((l) => /^import\s/.test(l));

// V8 takes the WebAssembly tiering budget only before the first module is compiled (undici compiles its
// HTTP parser as it loads): an import sorted above it would silently bring back some 20 MB of idle memory.
describe('V8 settings of the relay process', () => {
  it('src/cli.ts imports cli/v8-flags.js before any other module', () => {
    expect(importsOf('src/cli.ts')[0]).toMatch(/^import '\.\/cli\/v8-flags\.js';/);
  });

  it('v8-flags imports nothing but node:v8', () => {
    expect(importsOf('src/cli/v8-flags.ts')).toEqual(["import { setFlagsFromString } from 'node:v8';"]);
  });
});

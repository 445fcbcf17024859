import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(import.meta.dirname, '../..');

/** Which of these packages a fresh Node process has loaded after running `script` (an ES module). */
function loadedAfter(script: string, packages: string[]): string[] {
  const probe = `${script}
const { createRequire } = await import('node:module');
const cache = Object.keys(createRequire(import.meta.url).cache);
process.stdout.write(JSON.stringify(${JSON.stringify(packages)}.filter((p) => cache.some((k) => k.includes('/node_modules/' + p + '/')))));`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: REPO, encoding: 'utf8' })) as string[];
}

// The built relay (npm test builds it first): what an idle relay holds in memory is what its start imports.
describe('modules loaded when first needed (idle memory)', () => {
  const heavy = ['mailparser', 'libmime', 'iconv-lite', 'html-to-text', 'ioredis'];

  it('the relay and every part it is made of import no MIME parser, character-set tables or Redis client', () => {
    expect(loadedAfter("await import('./dist/app/create-relay.js'); await import('./dist/app/accounts.js'); await import('./dist/config/load.js');", heavy)).toEqual([]);
  });

  it('libmime comes in with the first header that needs it, and not mailparser with it', () => {
    const script = `const { decodeDisplayName } = await import('./dist/mime/headers.js');
if (decodeDisplayName('=?UTF-8?Q?J=C3=B6rg?=') !== 'Jörg') throw new Error('not decoded');`;
    expect(loadedAfter(script, heavy)).toEqual(['libmime', 'iconv-lite']);
  });
});

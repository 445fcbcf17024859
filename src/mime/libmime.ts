/** libmime, loaded at its first use rather than at start. */

import { createRequire } from 'node:module';
import type Libmime from 'libmime';

/**
 * libmime brings its character-set tables (iconv-lite, encoding-japanese): about 11 MB of resident memory
 * that an idle relay does not need. It is required synchronously on the first call (a few milliseconds,
 * once: the first message that needs a header decoded), so its callers stay synchronous.
 */
let loaded: typeof Libmime | null = null;

export function libmime(): typeof Libmime {
  loaded ??= createRequire(import.meta.url)('libmime') as typeof Libmime;
  return loaded;
}

/** A message's Subject as a person reads it (RFC 2047 words decoded), for the delivery history when it may keep subjects. */

import { libmime } from './libmime.js';
import { fieldValue, splitFields } from './headers.js';

export function subjectOf(header: Buffer, max = 500): string | null {
  const f = splitFields(header).find((x) => x.key === 'subject');
  if (!f) return null;
  const raw = fieldValue(header, f);
  try {
    return libmime().decodeWords(raw).slice(0, max);
  } catch {
    return raw.slice(0, max);
  }
}

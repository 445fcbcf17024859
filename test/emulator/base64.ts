/** Strict base64 decoding: the standard alphabet, correct padding, no whitespace. */

function isAlphabet(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47;
}

/**
 * Decodes `input` only if it is canonical-shape base64 (A–Z a–z 0–9 + /, '=' padding to a multiple
 * of 4, nothing else — not even line breaks); returns undefined otherwise, including for empty input.
 * Node's own decoder silently skips garbage, which would hide encoder bugs in the relay.
 */
export function decodeStrictBase64(input: Buffer | string): Buffer | undefined {
  // latin1 maps bytes 1:1 to code units, so a Buffer is checked byte for byte.
  const text = typeof input === 'string' ? input : input.toString('latin1');
  const n = text.length;
  if (n === 0 || n % 4 !== 0) return undefined;
  let padding = 0;
  if (text.charCodeAt(n - 1) === 61) padding = text.charCodeAt(n - 2) === 61 ? 2 : 1;
  for (let i = 0; i < n - padding; i++) {
    if (!isAlphabet(text.charCodeAt(i))) return undefined;
  }
  return Buffer.from(text, 'base64');
}

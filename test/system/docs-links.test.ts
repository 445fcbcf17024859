/**
 * The documentation's relative links hold: every [text](target) in README.md, docs/*.md (and ARCHITECTURE.md
 * once it exists) names a file that exists, and a #fragment names a heading of the target, by GitHub's anchor
 * rules. Web links (http:, https:, mailto:) are not followed. The README stays a short guide.
 */

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(import.meta.dirname, '../..');
const README_MAX_LINES = 260;


/** The checked pages, relative to the repository. */
function pages(): string[] {
  const docs = readdirSync(path.join(REPO, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs, 'ARCHITECTURE.md'];
}

/** Fenced code blocks (``` or ~~~, indented in lists too) hold neither links nor headings. */
function withoutFences(md: string): string {
  return md.replace(/^ *(```|~~~)[^\n]*\n[\s\S]*?^ *\1[^\n]*$/gm, '');
}

/** GitHub's heading anchor: lower case, punctuation and symbols dropped (not "-" or "_"), each space a "-". */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link in a heading anchors on its text
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** Every anchor of a Markdown file: its headings (repeats get -1, -2, …) and <a id|name="…"> tags. */
function anchors(md: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  const text = withoutFences(md);
  for (const m of text.matchAll(/^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/gm)) {
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of text.matchAll(/<a\s[^>]*\b(?:id|name)="([^"]+)"/g)) out.add(m[1]!);
  return out;
}

/** Link targets of a Markdown file, outside code: inline links, images and reference definitions. */
function links(md: string): string[] {
  const text = withoutFences(md).replace(/`[^`\n]*`/g, '');
  const inline = [...text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!);
  const defs = [...text.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?/gm)].map((m) => m[1]!);
  return [...inline, ...defs];
}

/** What is wrong with one link from `page`, or null when it holds. */
function problem(page: string, target: string): string | null {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return null; // http:, https:, mailto:
  const [file, fragment] = target.split('#', 2) as [string, string | undefined];
  const resolved = file ? path.normalize(path.join(path.dirname(page), decodeURIComponent(file))) : page;
  const full = path.join(REPO, resolved);
  if (!existsSync(full)) return `${resolved} does not exist`;
  if (!fragment || !resolved.endsWith('.md')) return null; // #L10 in a source file is GitHub's, not a heading
  const id = decodeURIComponent(fragment);
  return anchors(readFileSync(full, 'utf8')).has(id) ? null : `${resolved} has no heading #${id}`;
}

describe('documentation links', () => {
  it('every relative link names an existing file, and an existing heading after #', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const page of pages()) {
      for (const target of links(readFileSync(path.join(REPO, page), 'utf8'))) {
        checked++;
        const p = problem(page, target);
        if (p) broken.push(`${page}: (${target}): ${p}`);
      }
    }
    expect(checked).toBeGreaterThan(20); // the scanner really found the links
    expect(broken, `broken links:\n${broken.join('\n')}`).toEqual([]);
  });

  it('the README stays a short guide', () => {
    const lines = readFileSync(path.join(REPO, 'README.md'), 'utf8').replace(/\n$/, '').split('\n').length;
    expect(lines).toBeLessThanOrEqual(README_MAX_LINES);
  });

  it('anchors follow GitHub: punctuation and backticks dropped, spaces to dashes, repeats numbered', () => {
    expect(slug('What Graph sees: recipients, From and the header section')).toBe('what-graph-sees-recipients-from-and-the-header-section');
    expect(slug('`554 5.7.1 Client host [ip] is not allowed to relay`')).toBe('554-571-client-host-ip-is-not-allowed-to-relay');
    expect(slug('`550 5.7.1 Sender <a> is not allowed for …`')).toBe('550-571-sender-a-is-not-allowed-for-');
    expect(slug('Credentials: which one where')).toBe('credentials-which-one-where');
    expect([...anchors('# Settings\n```sh\n# not a heading\n```\n## Settings\n### Settings\n')]).toEqual(['settings', 'settings-1', 'settings-2']);
    expect(links('[a](x.md) `[b](y.md)` ![c](z.png "title")\n```\n[d](w.md)\n```\n[e]: v.md\n')).toEqual(['x.md', 'z.png', 'v.md']);
  });
});

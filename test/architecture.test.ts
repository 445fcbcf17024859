/**
 * The architecture as ARCHITECTURE.md draws it: imports only down the layers, no cycles, every source file
 * reached by a test (dependency-cruiser with .dependency-cruiser.cjs), and pieces small enough to read.
 */

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(import.meta.dirname, '..');
const MAX_FILE_LINES = 300;
const MAX_FUNCTION_LINES = 60;

function sources(dir = path.join(REPO, 'src')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

interface Violation {
  from: string;
  to: string;
  rule: { name: string };
}

describe('architecture', () => {
  it('imports go only down the layers, without cycles, and every source file is reached by a test', { timeout: 120_000 }, () => {
    let out: string;
    try {
      out = execFileSync(path.join(REPO, 'node_modules/.bin/depcruise'), ['src', 'test', '--config', '.dependency-cruiser.cjs', '--output-type', 'json'], { cwd: REPO, encoding: 'utf8', maxBuffer: 64 << 20 });
    } catch (err) {
      // depcruise exits non-zero when it finds violations; its JSON is still on stdout.
      out = (err as { stdout: string }).stdout;
    }
    const result = JSON.parse(out) as { summary: { violations: Violation[]; totalCruised: number } };
    expect(result.summary.totalCruised).toBeGreaterThan(100);
    const found = result.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`);
    expect(found).toEqual([]);
  });

  it(`no source file is over ${MAX_FILE_LINES} lines`, () => {
    const long = sources()
      .map((f) => [path.relative(REPO, f), readFileSync(f, 'utf8').split('\n').length] as const)
      .filter(([, n]) => n > MAX_FILE_LINES);
    expect(long).toEqual([]);
  });

  it(`a function over ${MAX_FUNCTION_LINES} lines says why in its comment ("long because")`, () => {
    const unexplained: string[] = [];
    for (const file of sources()) {
      const text = readFileSync(file, 'utf8');
      const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
      const visit = (n: ts.Node): void => {
        const fn = ts.isFunctionDeclaration(n) || ts.isMethodDeclaration(n) || ts.isArrowFunction(n) || ts.isFunctionExpression(n) || ts.isConstructorDeclaration(n);
        if (fn && (n as ts.FunctionLikeDeclaration).body) {
          const first = src.getLineAndCharacterOfPosition(n.getStart()).line;
          const lines = src.getLineAndCharacterOfPosition(n.end).line - first + 1;
          const comment = (ts.getLeadingCommentRanges(text, n.getFullStart()) ?? []).map((r) => text.slice(r.pos, r.end)).join('\n');
          if (lines > MAX_FUNCTION_LINES && !/long because/i.test(comment)) unexplained.push(`${path.relative(REPO, file)}:${first + 1} (${lines} lines)`);
        }
        ts.forEachChild(n, visit);
      };
      visit(src);
    }
    expect(unexplained).toEqual([]);
  });
});

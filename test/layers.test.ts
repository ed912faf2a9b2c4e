// Layers point down: cli → host/plugin → transport/verify → tls/audit/discover → errors. A module may
// import its own layer or one below it, never one above: a lower layer that reaches up ties the call
// path to everything above it and makes cycles easy (issue 14: transport/broker.ts imported host/).
// This reads the import specifiers of every source file under src/, type-only ones included (the
// compiled JavaScript would lose those).
import { readdir, readFile } from 'node:fs/promises';
import { join, posix, relative, sep } from 'node:path';
import test from 'ava';
import ts from 'typescript';
import { repoRoot } from './helpers/paths.js';

/**
 * Bottom to top. Next to the layers the rule names: logger.ts (the Logger interface, imported by audit)
 * and process-identity.ts (which process a pid names, for reattach and the install lock) sit with
 * errors.ts; bundle/ (builds a plugin's bundle for the CLI, on verify's atomic files) with
 * host/plugin; the package's entry points on top, since they re-export every layer.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['errors.ts', 'logger.ts', 'process-identity.ts'],
  ['tls', 'audit', 'discover'],
  ['transport', 'verify'],
  ['host', 'plugin', 'bundle'],
  ['cli'],
  ['index.ts', 'testing.ts', 'adapters'],
];
const ENTRY_POINTS = LAYERS.length - 1;
const PACKAGE_NAME = 'gatehouse-plugins';

const srcRoot = join(repoRoot, 'src');

/** The layer of a path relative to src/ (posix separators): its top directory, or the file at the top. */
function layerOf(srcPath: string): number | undefined {
  const top = srcPath.split('/')[0] as string;
  const index = LAYERS.findIndex((names) => names.includes(top));
  return index === -1 ? undefined : index;
}

/** Every module specifier in a TypeScript source: imports and re-exports (type-only too), import() and import types, import = require(). */
export function importSpecifiers(fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push(node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const expression = node.moduleReference.expression;
      if (ts.isStringLiteral(expression)) found.push(expression.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [argument] = node.arguments;
      if (argument && ts.isStringLiteralLike(argument)) found.push(argument.text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The layer a specifier points into, seen from `fromSrcPath`; undefined for other packages and node: modules. */
function targetLayer(fromSrcPath: string, specifier: string): { layer: number | undefined; target: string } | undefined {
  // The package importing itself by name reaches its entry points, whatever the subpath.
  if (specifier === PACKAGE_NAME || specifier.startsWith(`${PACKAGE_NAME}/`)) return { layer: ENTRY_POINTS, target: specifier };
  if (!specifier.startsWith('.')) return undefined;
  // Sources import each other by their compiled name (./x.js for ./x.ts).
  const target = posix.normalize(posix.join(posix.dirname(fromSrcPath), specifier)).replace(/\.js$/, '.ts');
  // Outside src/ (none today): not part of the layering.
  if (target.startsWith('../')) return undefined;
  return { layer: layerOf(target), target };
}

async function sourceFiles(): Promise<string[]> {
  const entries = await readdir(srcRoot, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => relative(srcRoot, join(entry.parentPath, entry.name)).split(sep).join('/'))
    .sort();
}

test('the import reader sees every form of import, type-only ones included', (t) => {
  const text = [
    "import { a } from './a.js';",
    "import type { B } from '../b.js';",
    "import './side-effect.js';",
    "export { c } from './c.js';",
    "export type { D } from './d.js';",
    "export * from './e.js';",
    "import f = require('./f.js');",
    "const g = await import('./g.js');",
    "type H = typeof import('./h.js');",
    "let i: import('./i.js').I;",
    "const notAnImport = 'from \\'./j.js\\'';",
  ].join('\n');
  t.deepEqual(importSpecifiers('sample.ts', text), ['./a.js', '../b.js', './side-effect.js', './c.js', './d.js', './e.js', './f.js', './g.js', './h.js', './i.js']);
});

test('every module under src/ belongs to a layer', async (t) => {
  const files = await sourceFiles();
  t.true(files.length > 50, `found the sources in ${srcRoot}`);
  const unplaced = files.filter((file) => layerOf(file) === undefined);
  t.deepEqual(unplaced, [], 'a new top-level module or directory under src/ needs its place in LAYERS (test/layers.test.ts)');
});

test('no module imports from a higher layer (cli → host/plugin → transport/verify → tls/audit/discover → errors)', async (t) => {
  const violations: string[] = [];
  let checked = 0;
  for (const file of await sourceFiles()) {
    const from = layerOf(file);
    if (from === undefined) continue;
    const text = await readFile(join(srcRoot, file), 'utf8');
    for (const specifier of importSpecifiers(file, text)) {
      const to = targetLayer(file, specifier);
      if (to === undefined) continue;
      checked++;
      if (to.layer === undefined || to.layer > from) {
        violations.push(`src/${file} (${LAYERS[from]?.join('/')}) imports ${specifier} (${to.layer === undefined ? 'no layer' : LAYERS[to.layer]?.join('/')})`);
      }
    }
  }
  t.true(checked > 100, 'the imports between modules were read');
  t.deepEqual(violations, [], 'move what the lower module needs down (or make it a narrow interface there) instead of importing upwards');
});

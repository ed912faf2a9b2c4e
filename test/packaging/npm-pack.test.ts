// What `npm publish` would ship, from `npm pack --dry-run --json`: the built library and CLI with the
// sources their maps point at, the docs the CLI cites, no tests, no build state, no secret and no empty keys/.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { repoRoot } from '../helpers/paths.js';

const execFileAsync = promisify(execFile);

/** npm's own CLI: the one running us under `npm test`, else the one installed beside this Node. */
const npmCli = process.env.npm_execpath ?? join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');

async function packedFiles(): Promise<string[]> {
  // --ignore-scripts: `prepare` would rebuild; the tests run on the build already made.
  const { stdout } = await execFileAsync(process.execPath, [npmCli, 'pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: repoRoot,
    timeout: 120_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const [pack] = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>;
  return (pack?.files ?? []).map((file) => file.path).sort();
}

const files = packedFiles();

test('npm pack ships the library, its types, the CLI and the protos', async (t) => {
  const list = await files;
  for (const needed of ['package.json', 'README.md', 'SECURITY.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/plugin/index.js', 'dist/src/cli/main.js', 'proto/grpc_health_v1.proto']) {
    t.true(list.includes(needed), needed);
  }
});

test('npm pack ships no tests, examples, bench, build state or scripts of the repository', async (t) => {
  const stray = (await files).filter((file) => /^(dist\/(test|examples|bench)\/|test\/|bench\/|scripts\/|node_modules\/)|\.tsbuildinfo$|\.key$/.test(file));
  t.deepEqual(stray, []);
});

test('every source map points at a source that ships', async (t) => {
  const list = await files;
  const shipped = new Set(list);
  const maps = list.filter((file) => file.endsWith('.js.map'));
  t.true(maps.length > 0, 'there are source maps to check');
  const missing: string[] = [];
  for (const map of maps) {
    const { sources } = JSON.parse(await readFile(join(repoRoot, map), 'utf8')) as { sources: string[] };
    for (const source of sources) {
      const path = normalize(join(dirname(map), source));
      if (!shipped.has(path)) missing.push(`${map} -> ${path}`);
    }
  }
  t.deepEqual(missing, []);
});

test('every docs/*.md the shipped code cites ships too', async (t) => {
  const list = await files;
  const cited = new Set<string>();
  for (const file of list.filter((path) => path.startsWith('dist/src/') && path.endsWith('.js'))) {
    for (const match of (await readFile(join(repoRoot, file), 'utf8')).matchAll(/docs\/[\w-]+\.md/g)) cited.add(match[0]);
  }
  t.true(cited.size > 0, 'the CLI cites docs');
  t.deepEqual([...cited].filter((doc) => !list.includes(doc)), []);
});

test('keys/ ships only its public keys, and nothing while it holds none', async (t) => {
  const keys = (await files).filter((file) => file.startsWith('keys/'));
  t.true(keys.every((file) => file.endsWith('.pub')), keys.join(', '));
});

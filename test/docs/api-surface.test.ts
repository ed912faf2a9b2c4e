// The package exports exactly what README.md and docs/ present as API, no less: every value each of its entry
// points exports is named in them, so that nothing is public that a user cannot learn of (or that we forgot we made public).
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import test from 'ava';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

test('every value an entry point of the package exports is named in README.md or docs/', async (t) => {
  const docs = join(repo, 'docs');
  const pages = ['README.md', ...(await readdir(docs)).filter((name) => name.endsWith('.md')).map((name) => join('docs', name))];
  const text = (await Promise.all(pages.map((page) => readFile(join(repo, page), 'utf8')))).join('\n');
  const named = new Set(text.match(/[A-Za-z_$][\w$]*/g));
  const { exports } = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as { exports: Record<string, { default: string }> };
  t.true(Object.keys(exports).length >= 4, 'every entry point is checked');
  const unnamed: string[] = [];
  for (const [entry, { default: file }] of Object.entries(exports)) {
    const api = (await import(pathToFileURL(join(repo, file)).href)) as Record<string, unknown>;
    for (const name of Object.keys(api)) if (!named.has(name)) unnamed.push(`${entry}: ${name}`);
  }
  t.deepEqual(unnamed, [], `exported, but named nowhere in README.md or docs/: ${unnamed.join(', ')}`);
});

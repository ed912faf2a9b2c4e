// The generated code under examples/generated is committed (so `npm test` needs no protoc); it must be
// what the pinned generators make of the .proto files today.
import { access, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import test from 'ava';
import { generate, PROTOC } from '../../examples/generate.js';
import { repoRoot } from '../helpers/paths.js';

async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}

const protocMissing = await access(PROTOC).then(() => false, () => true);
if (protocMissing && process.env.CI !== 'true') {
  console.log(`examples/generated: ${PROTOC} not found; skipping the check that the generated code is current`);
}

(protocMissing && process.env.CI !== 'true' ? test.skip : test)('examples/generated is what the generators make of the .proto files', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'gatehouse-generated-'));
  try {
    await generate(out);
    const committed = join(repoRoot, 'examples', 'generated');
    t.deepEqual(await files(out), await files(committed));
    for (const file of await files(out)) {
      const fresh = await readFile(join(out, file), 'utf8');
      t.is(await readFile(join(committed, file), 'utf8'), fresh, `${file} is stale: run node dist/examples/generate.js`);
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

// A plugin bundle sealed as a one-file package, so that the bench starts it the way a verified launch
// starts a package (docs/plugins.md): from its sealed copy, with the containment hook preloaded (PK1).
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createPackageEntry } from '../src/verify/package-create.js';
import { sealPluginPackage } from '../src/verify/package-seal.js';
import type { SealedPlugin } from '../src/verify/seal.js';

/** Seals a copy of `bundle`; run `args` (the hook's `--import` first) with any Node, dispose when done. */
export async function sealBundle(bundle: string): Promise<SealedPlugin> {
  const dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-bench-package-'));
  try {
    await mkdir(path.join(dir, 'pkg'), { mode: 0o755 });
    await copyFile(bundle, path.join(dir, 'pkg', 'plugin.mjs'));
    const entry = await createPackageEntry(dir, { name: 'kv', dir: 'pkg', entry: 'plugin.mjs' });
    return await sealPluginPackage(entry, dir);
  } finally {
    // The seal holds its own copy.
    await rm(dir, { recursive: true, force: true });
  }
}

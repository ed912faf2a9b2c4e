import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { prepareSealRoot } from '../../src/verify/seal-root.js';

/** A fresh private directory under the system temporary directory, removed when the test ends. */
export async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A fresh private seal root inside the default one (sealing refuses anything under /tmp), removed when the test ends. */
export async function sealRootDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(await prepareSealRoot(), 'test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `content` to `dir/name` (creating parent directories) and sets exactly `mode`, whatever the umask. */
export async function writeFileWithMode(dir: string, name: string, content: string | Uint8Array, mode: number): Promise<string> {
  const file = join(dir, name);
  await mkdir(dirname(file), { recursive: true, mode: 0o755 });
  await writeFile(file, content);
  await chmod(file, mode);
  return file;
}

export const runningAsRoot = process.geteuid?.() === 0;

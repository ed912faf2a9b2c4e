// A consumer project as a user has it: the packed tarball of this package installed into node_modules,
// with nothing but the package's public entry points to import. Offline: npm pack, then the tarball is
// unpacked into node_modules/gatehouse-plugins and the package's production dependencies are linked from
// this checkout (npm install --offline has no cache to install them from here).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, realpath, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../helpers/paths.js';

const run = promisify(execFile);
const TAR = '/usr/bin/tar';
/** What a plugin package need not carry: the bundler's native binaries and type declarations. */
const NOT_FOR_PLUGINS = /^(esbuild|@esbuild\/|@types\/|undici-types$)/;

export interface ConsumerProject {
  /** The project: package.json and node_modules/gatehouse-plugins (from the tarball) with its dependencies. */
  dir: string;
  /** The unpacked tarball. */
  packageDir: string;
  /** Files in the tarball, as npm pack lists them. */
  tarball: string;
}

/** The production dependencies installed at the top of this checkout's node_modules (package-lock.json). */
async function productionDependencies(): Promise<string[]> {
  const lock = JSON.parse(await readFile(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  return Object.entries(lock.packages)
    .filter(([key, meta]) => key.startsWith('node_modules/') && !key.slice(13).includes('node_modules/') && meta.dev !== true)
    .map(([key]) => key.slice(13))
    .filter((name) => existsSync(join(repoRoot, 'node_modules', name)));
}

export async function makeConsumerProject(root: string): Promise<ConsumerProject> {
  const dir = await mkdtemp(join(root, 'consumer-'));
  const npmCli = await realpath(join(dirname(process.execPath), 'npm'));
  const env = { PATH: dirname(process.execPath), HOME: dir, npm_config_update_notifier: 'false', npm_config_audit: 'false', npm_config_fund: 'false' };
  const { stdout } = await run(process.execPath, [npmCli, 'pack', '--silent', '--pack-destination', dir], { cwd: repoRoot, env });
  const tarball = join(dir, stdout.trim().split('\n').at(-1) ?? '');
  const packageDir = join(dir, 'node_modules', 'gatehouse-plugins');
  await mkdir(packageDir, { recursive: true });
  await run(TAR, ['-xzf', tarball, '-C', packageDir, '--strip-components=1']);
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
  for (const name of await productionDependencies()) {
    await mkdir(dirname(join(dir, 'node_modules', name)), { recursive: true });
    await symlink(join(repoRoot, 'node_modules', name), join(dir, 'node_modules', name));
  }
  return { dir, packageDir, tarball };
}

/**
 * Copies (never links: packages hold regular files only) the unpacked gatehouse-plugins and its runtime
 * dependencies into `pkgDir/node_modules`, as `npm install --omit=dev` would lay them out for a plugin.
 */
export async function installIntoPluginPackage(project: ConsumerProject, pkgDir: string): Promise<void> {
  await cp(project.packageDir, join(pkgDir, 'node_modules', 'gatehouse-plugins'), { recursive: true });
  for (const name of (await productionDependencies()).filter((name) => !NOT_FOR_PLUGINS.test(name))) {
    await cp(join(repoRoot, 'node_modules', name), join(pkgDir, 'node_modules', name), { recursive: true, dereference: true });
  }
}

export async function makeRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'gatehouse-consumer-'));
}

import { isAbsolute, join, posix } from 'node:path';
import { checkFileSafety } from '../discover/file-safety.js';
import { GatehouseError } from '../errors.js';
import { digestOf, sha256File, sha256Files } from './hash.js';
import { relativePath, type ManifestInterpreter, type ManifestPlugin } from './manifest.js';
import { checkPluginVersion } from './package-fields.js';
import { listPackageTree } from './package-tree.js';
import { parseStrictJson } from './strict-json.js';
import { readLimited } from '../discover/untrusted-file.js';

/** How to list one plugin package in a manifest. */
export interface PackageSpec {
  /** The manifest entry's name. */
  name: string;
  /** The package directory, relative to the plugin directory. */
  dir: string;
  /** The file Node runs, relative to the package directory (default: package.json's `bin`, else `main`). */
  entry?: string;
  /** An absolute path to Node (default: the Node running this). */
  interpreter?: string;
  /** Record the interpreter's digest, so that the sealed copy of those bytes runs (default false: the system's, checked for safety). */
  pinInterpreter?: boolean;
  /** A semantic version (default: package.json's `version`, if it has a valid one). */
  version?: string;
}

export const MAX_PACKAGE_JSON_BYTES = 1024 * 1024;

/**
 * A manifest entry for the package at `dir/spec.dir`: its entry file and every other regular file in the
 * tree (its node_modules, data files), each passing the file-safety checks and hashed on the hash workers.
 * A symbolic link in the tree is refused (PACKAGE_SYMLINK): install packages with real copies (npm does).
 */
export async function createPackageEntry(dir: string, spec: PackageSpec, concurrency?: number): Promise<ManifestPlugin> {
  const pkg = relativePath(spec.dir.replace(/\/+$/, ''), `package ${spec.name}`);
  const meta = await packageJson(dir, pkg);
  const entry = `${pkg}/${entryFile(spec, meta, pkg)}`;
  const paths = await listPackageTree(dir, pkg);
  if (!paths.includes(entry)) throw new GatehouseError('FILE_NOT_FOUND', `${join(dir, entry)}: the entry of package ${spec.name} is not a file in it`);
  // A manifest vouches for bytes; vouching for a file that someone else can rewrite would vouch for their bytes too.
  await Promise.all(paths.map((path) => checkFileSafety(join(dir, path), dir, { executable: false })));
  const digests = await sha256Files(
    paths.map((path) => join(dir, path)),
    concurrency,
  );
  const files = paths.map((path, i) => ({ path, ...digestOf(digests[i]) }));
  const main = files.find((file) => file.path === entry);
  if (main === undefined) throw new GatehouseError('FILE_NOT_FOUND', `${join(dir, entry)}: not found`);
  const version = spec.version ?? (typeof meta?.version === 'string' ? meta.version : undefined);
  return {
    name: spec.name,
    ...main,
    interpreter: await interpreterOf(spec),
    files: files.filter((file) => file !== main),
    ...(version === undefined ? {} : { version: checkPluginVersion(version, `package ${spec.name} version`) }),
    package: pkg,
  };
}

async function packageJson(dir: string, pkg: string): Promise<Record<string, unknown> | undefined> {
  const file = join(dir, pkg, 'package.json');
  let bytes: Buffer;
  try {
    bytes = await readLimited(file, MAX_PACKAGE_JSON_BYTES, 'INVALID_OPTIONS');
  } catch (error) {
    if (error instanceof GatehouseError && error.code === 'FILE_NOT_FOUND') return undefined;
    throw error;
  }
  const value = parseStrictJson(bytes.toString('utf8'), 'INVALID_OPTIONS', file);
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function entryFile(spec: PackageSpec, meta: Record<string, unknown> | undefined, pkg: string): string {
  const bin = meta?.bin;
  const fromBin = typeof bin === 'string' ? bin : typeof bin === 'object' && bin !== null ? binFor(bin as Record<string, unknown>, spec.name) : undefined;
  const chosen = spec.entry ?? fromBin ?? (typeof meta?.main === 'string' ? meta.main : undefined);
  if (chosen === undefined) {
    throw new GatehouseError('INVALID_OPTIONS', `package ${spec.name} (${pkg}): no entry given and its package.json has neither "bin" nor "main"`);
  }
  // package.json writes "./dist/main.js"; the manifest wants the normalised relative form.
  return relativePath(posix.normalize(chosen), `package ${spec.name} entry`);
}

function binFor(bin: Record<string, unknown>, name: string): string | undefined {
  const values = Object.values(bin).filter((value): value is string => typeof value === 'string');
  const named = bin[name];
  return typeof named === 'string' ? named : values.length === 1 ? values[0] : undefined;
}

async function interpreterOf(spec: PackageSpec): Promise<ManifestInterpreter> {
  const path = spec.interpreter ?? process.execPath;
  if (!isAbsolute(path)) throw new GatehouseError('INVALID_OPTIONS', `package ${spec.name}: the interpreter must be an absolute path, got ${path}`);
  // An interpreter others can rewrite would run their code for this plugin, pinned or not.
  await checkFileSafety(path, '/', { executable: true });
  return spec.pinInterpreter === true ? { path, ...(await sha256File(path)) } : { path };
}

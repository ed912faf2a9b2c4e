import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { GatehouseError } from '../errors.js';
import { prepareFileAtomic, type PreparedFile } from './atomic-file.js';
import type { Manifest, ManifestPlugin } from './manifest.js';
import { parseStrictJson } from './strict-json.js';
import { readLimited } from '../discover/untrusted-file.js';

export const LOCK_SCHEMA = 'gatehouse.lock/v1';
const MAX_LOCK_BYTES = 4 * 1024 * 1024;

/** One installed plugin: its name, version, and one digest over every file of its tree. */
export interface LockedPlugin {
  name: string;
  version?: string;
  /** SHA-256 over the sorted lines `path NUL sha256 NUL size LF` of the entry's files. */
  tree: string;
}

/** One installed release: its directory (under the releases directory) and the manifest it was installed from. */
export interface LockedRelease {
  dir: string;
  manifestVersion: number;
  manifestSha256: string;
  plugins: LockedPlugin[];
}

/** What `gatehouse install` installed (`current`) and the release it replaced (`previous`, for --rollback). */
export interface LockFile {
  schema: typeof LOCK_SCHEMA;
  current: LockedRelease;
  previous?: LockedRelease;
}

/** The lock entries of a manifest's plugins. */
export function lockedPlugins(manifest: Manifest): LockedPlugin[] {
  return manifest.plugins.map((plugin) => ({ name: plugin.name, ...(plugin.version === undefined ? {} : { version: plugin.version }), tree: treeDigest(plugin) }));
}

/** One digest for a whole entry: any file added, removed, renamed or changed changes it. */
export function treeDigest(plugin: ManifestPlugin): string {
  const files = [plugin, ...(plugin.files ?? [])];
  const interpreter = plugin.interpreter;
  if (interpreter?.sha256 !== undefined && interpreter.size !== undefined) files.push({ path: interpreter.path, sha256: interpreter.sha256, size: interpreter.size });
  const lines = files.map((file) => `${file.path}\0${file.sha256}\0${file.size}\n`).sort();
  return createHash('sha256').update(lines.join('')).digest('hex');
}

/** `lock`, written beside `path` and ready to replace it (see {@link prepareFileAtomic}). */
export function prepareLockFile(path: string, lock: LockFile): Promise<PreparedFile> {
  return prepareFileAtomic(path, `${JSON.stringify(lock, null, 2)}\n`, 0o644);
}

/**
 * Reads a lock file strictly (size-limited, no duplicate keys, every field checked): LOCK_MISMATCH names what is wrong.
 * `checkOpened` may refuse the file on what fstat says about it before anything is read.
 */
export async function readLockFile(path: string, checkOpened?: (stats: Stats) => void): Promise<LockFile> {
  const bytes = await readLimited(path, MAX_LOCK_BYTES, 'LOCK_MISMATCH', checkOpened);
  const value = parseStrictJson(bytes.toString('utf8'), 'LOCK_MISMATCH', path) as Partial<LockFile> | null;
  if (typeof value !== 'object' || value === null || value.schema !== LOCK_SCHEMA) throw bad(path, `schema is not ${LOCK_SCHEMA}`);
  return { schema: LOCK_SCHEMA, current: release(value.current, path), ...(value.previous === undefined ? {} : { previous: release(value.previous, path) }) };
}

function release(value: unknown, path: string): LockedRelease {
  const r = value as Partial<LockedRelease> | undefined;
  const ok =
    typeof r === 'object' &&
    r !== null &&
    typeof r.dir === 'string' &&
    /^[A-Za-z0-9._-]{1,128}$/.test(r.dir) &&
    !r.dir.startsWith('.') &&
    Number.isSafeInteger(r.manifestVersion) &&
    typeof r.manifestSha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(r.manifestSha256) &&
    Array.isArray(r.plugins) &&
    r.plugins.every((p: Partial<LockedPlugin> | null) => typeof p === 'object' && p !== null && typeof p.name === 'string' && typeof p.tree === 'string' && /^[0-9a-f]{64}$/.test(p.tree) && (p.version === undefined || typeof p.version === 'string'));
  // The directory name is joined to a path later: only a plain name may come from the file.
  if (!ok) throw bad(path, 'a release record is malformed');
  return r as LockedRelease;
}

function bad(path: string, problem: string): GatehouseError {
  return new GatehouseError('LOCK_MISMATCH', `${path}: ${problem}`);
}

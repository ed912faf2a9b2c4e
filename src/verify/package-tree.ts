import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fsError } from '../discover/fs-error.js';
import { GatehouseError } from '../errors.js';
import type { ManifestPlugin } from './manifest.js';

/** Far beyond a real package, and still below what a 1 MiB manifest can list. */
const LIMITS = { files: 20_000, depth: 64 };

/**
 * Every regular file under the package directory `pkg` (relative to `dir`), as sorted `/`-separated paths
 * relative to `dir`. Symbolic links anywhere in the tree are refused (PACKAGE_SYMLINK), not followed nor
 * recorded: a link's target can change after signing, and sealing copies bytes, not links. Sockets,
 * FIFOs and devices are refused too (FILE_NOT_REGULAR).
 */
export async function listPackageTree(dir: string, pkg: string): Promise<string[]> {
  const files: string[] = [];
  const walk = async (relative: string, depth: number): Promise<void> => {
    // Bounded so a hostile tree (deep nesting, millions of files) cannot exhaust the host.
    if (depth > LIMITS.depth) throw new GatehouseError('MANIFEST_INVALID', `${relative}: package nested deeper than ${LIMITS.depth} directories`);
    const absolute = join(dir, relative);
    let entries: Dirent[];
    try {
      entries = await readdir(absolute, { withFileTypes: true });
    } catch (error) {
      throw fsError(error, absolute);
    }
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const path = `${relative}/${entry.name}`;
      if (entry.isDirectory()) await walk(path, depth + 1);
      else if (entry.isSymbolicLink()) {
        // A link in a package would let the directory's owner point a signed name at unsigned bytes later.
        throw new GatehouseError('PACKAGE_SYMLINK', `${join(dir, path)}: a symbolic link inside plugin package ${pkg}; packages must hold regular files only`, {
          details: { file: path },
        });
      } else if (entry.isFile()) {
        files.push(path);
        if (files.length > LIMITS.files) throw new GatehouseError('MANIFEST_INVALID', `${pkg}: more than ${LIMITS.files} files in the package`);
      } else {
        throw new GatehouseError('FILE_NOT_REGULAR', `${join(dir, path)}: not a regular file or directory, inside plugin package ${pkg}`, { details: { file: path } });
      }
    }
  };
  await walk(pkg, 0);
  return files;
}

/**
 * Checks that a package entry's directory holds exactly what the manifest lists: no symbolic link and no
 * unlisted file (PACKAGE_FILE_UNLISTED, naming it). Digests are checked elsewhere ({@link verifyPlugins}).
 */
export async function checkPackageTree(entry: ManifestPlugin, dir: string): Promise<void> {
  if (entry.package === undefined) return;
  const listed = new Set([entry.path, ...(entry.files ?? []).map((file) => file.path)]);
  if (entry.interpreter !== undefined && !entry.interpreter.path.startsWith('/')) listed.add(entry.interpreter.path);
  for (const file of await listPackageTree(dir, entry.package)) {
    // An unlisted module in the tree could be loaded in place of, or beside, the signed ones.
    if (!listed.has(file)) {
      throw new GatehouseError('PACKAGE_FILE_UNLISTED', `${join(dir, file)}: in plugin package ${entry.package} of ${entry.name} but not in the manifest`, {
        details: { file },
      });
    }
  }
}

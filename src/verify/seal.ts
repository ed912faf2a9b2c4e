import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { isInside } from '../discover/file-safety.js';
import { fsError } from '../discover/fs-error.js';
import { GatehouseError } from '../errors.js';
import type { ManifestFile, ManifestPlugin } from './manifest.js';
import { checkScriptInterpreter } from './script-interpreter.js';
import { sealDirPrefix } from './seal-owner.js';
import { prepareSealRoot } from './seal-root.js';
import { openRegularFile, readChunks } from '../discover/untrusted-file.js';

/** What sealing needs of a plugin: a manifest entry, or one made up for `gatehouse call --sha256` (size unknown). */
export type SealablePlugin = Omit<ManifestPlugin, 'size'> & { size?: number };

export interface SealOptions {
  /**
   * The seal root, where the private directory is made (default: {@link defaultSealRoot}); it must be the
   * host's, with no directory up to `/` writable by another user (SEAL_ROOT_UNSAFE), and not mounted noexec.
   */
  parentDir?: string;
  /**
   * A group that may read and execute the copies (never write them): the group of a plugin run as another
   * user (launch's `user`/`group`). Without it only the host's user can reach them.
   */
  group?: number;
}

/** One file copied into the private directory and found equal to what the manifest says. */
export interface SealedFile {
  /** Where it was read from. */
  source: string;
  /** The verified copy. */
  path: string;
  sha256: string;
  size: number;
}

/**
 * A plugin whose files were copied into a private directory and verified there. Run `command` with
 * `args`, never the original path; dispose (after the plugin has exited) to remove the copies.
 */
export interface SealedPlugin extends AsyncDisposable {
  name: string;
  /** The private directory (0700, or 0750 with `group`) holding the copies. */
  dir: string;
  /** The verified copy of the plugin's own file (the executable, or the script for an interpreter). */
  path: string;
  sha256: string;
  /** What to execute: the sealed plugin, the sealed interpreter, or an unpinned system interpreter. */
  command: string;
  /** Arguments for `command`: the sealed script first when there is an interpreter, then the manifest's args. */
  args: string[];
  /** Every file sealed, the plugin's own first. */
  files: SealedFile[];
  dispose(): Promise<void>;
}

/**
 * Seals a plugin so that the bytes that run are the bytes that were verified: every file it runs is copied
 * into a fresh private directory through a descriptor opened without following links, hashed as it is
 * copied, compared with the manifest (DIGEST_MISMATCH, SIZE_MISMATCH), and only then made executable.
 * Relative paths resolve against `pluginDir`; on any failure nothing is left behind.
 */
export async function sealPlugin(entry: SealablePlugin, pluginDir: string, options: SealOptions = {}): Promise<SealedPlugin> {
  // Under a root no other user can write up to `/`: nothing the plugin resolves by walking up can be planted.
  const root = await prepareSealRoot(options);
  // mkdtemp makes the directory 0700 under a fresh random name: no other user can add, swap or open a copy
  // (with `group`, that group may then open and run them, never write). The name says which host it is for.
  const dir = await mkdtemp(await sealDirPrefix(root)).catch((error: unknown) => Promise.reject(sealFailure(error, root)));
  const dispose = () => rm(dir, { recursive: true, force: true });
  try {
    const access: Access = { dir, group: options.group, made: new Set() };
    await shareDirectory(dir, access.group);
    const pluginRoot = join(dir, 'plugin');
    const interpreter = entry.interpreter;
    const main = await sealFile(resolve(pluginDir, entry.path), copyPath(pluginRoot, entry.path), entry, !interpreter, access);
    const files = [main];
    for (const file of entry.files ?? []) files.push(await sealFile(resolve(pluginDir, file.path), copyPath(pluginRoot, file.path), file, false, access));
    let command = main.path;
    let args = [...(entry.args ?? [])];
    if (interpreter) {
      args = [main.path, ...args];
      if (interpreter.sha256 !== undefined) {
        const copy = isAbsolute(interpreter.path) ? join(dir, 'interpreter', basename(interpreter.path)) : copyPath(pluginRoot, interpreter.path);
        const sealed = await sealFile(resolve(pluginDir, interpreter.path), copy, { sha256: interpreter.sha256, size: interpreter.size }, true, access);
        files.push(sealed);
        command = sealed.path;
      } else if (isAbsolute(interpreter.path)) {
        command = interpreter.path;
      } else {
        // Only a system interpreter may go unhashed; a relative one would be looked up from wherever we happen to be.
        throw new GatehouseError('SEAL_FAILED', `${entry.name}: interpreter ${interpreter.path} is neither absolute nor pinned by digest`);
      }
    }
    // What the kernel runs, a script or an interpreter that is one, runs its `#!` chain too: each link
    // must pass the same checks as any plugin file.
    await checkScriptInterpreter(command);
    return { name: entry.name, dir, path: main.path, sha256: main.sha256, command, args, files, dispose, [Symbol.asyncDispose]: dispose };
  } catch (error) {
    await dispose();
    throw sealFailure(error, root);
  }
}

/** A failure while sealing as a GatehouseError: one of ours as it is, a file-system one as SEAL_FAILED saying where. */
function sealFailure(error: unknown, root: string): GatehouseError {
  if (error instanceof GatehouseError) return error;
  return new GatehouseError(
    'SEAL_FAILED',
    `cannot seal into ${root}: ${(error as Error).message}; check that the seal root (seal.parentDir, --seal-dir) can be written and has room`,
    { cause: error },
  );
}

/** The private directory and the group that may read (not write) what is in it. */
interface Access {
  dir: string;
  group: number | undefined;
  /** Directories already made under `dir`: a package of thousands of files asks for the same ones again and again. */
  made: Set<string>;
}

async function sealFile(
  source: string,
  copy: string,
  expected: Pick<ManifestFile, 'sha256'> & { size?: number },
  executable: boolean,
  access: Access,
): Promise<SealedFile> {
  // O_NOFOLLOW and an fstat on the descriptor: a link or FIFO swapped in for the plugin is refused.
  const input = await openRegularFile(source);
  try {
    await makeDirectories(access, dirname(copy));
    const output = await createCopy(copy);
    try {
      const hash = createHash('sha256');
      // Reading stops past the expected size (or the size at open): a file growing under us cannot fill the disk.
      const limit = expected.size ?? input.stats.size;
      let size = 0;
      for await (const chunk of readChunks(input)) {
        size += chunk.length;
        if (size > limit) break;
        // The very buffer that is hashed is the one written: the copy holds exactly the hashed bytes.
        hash.update(chunk);
        await writeAll(output, chunk);
      }
      if (size > limit) throw new GatehouseError('SIZE_MISMATCH', `${source}: more than ${limit} bytes`);
      if (expected.size !== undefined && size !== expected.size) {
        throw new GatehouseError('SIZE_MISMATCH', `${source}: ${size} bytes, expected ${expected.size}`);
      }
      const sha256 = hash.digest('hex');
      if (sha256 !== expected.sha256) throw new GatehouseError('DIGEST_MISMATCH', `${source}: SHA-256 is ${sha256}, expected ${expected.sha256}`);
      // Executable only once verified, and by us alone (and the run-as group); read-only, so not even we change it by mistake.
      if (access.group !== undefined) await output.chown(-1, access.group);
      await output.chmod((executable ? 0o500 : 0o400) | (access.group === undefined ? 0 : executable ? 0o050 : 0o040));
      return { source, path: copy, sha256, size };
    } finally {
      // Closed before anyone can exec it: Linux refuses to run a file still open for writing (ETXTBSY).
      await output.close();
    }
  } finally {
    await input.handle.close();
  }
}

/** Makes each directory from the private directory down to `target`, private or shared with the run-as group. */
async function makeDirectories(access: Access, target: string): Promise<void> {
  let current = access.dir;
  for (const name of relative(access.dir, target).split('/').filter((part) => part !== '')) {
    current = join(current, name);
    if (access.made.has(current)) continue;
    access.made.add(current);
    try {
      await mkdir(current, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new GatehouseError('SEAL_FAILED', `cannot create ${current}: ${fsError(error, current).message}`, { cause: error });
    }
    await shareDirectory(current, access.group);
  }
}

/** Lets `group` (the run-as plugin's) list and enter a directory of the seal; write stays the host's alone. */
export async function shareDirectory(dir: string, group: number | undefined): Promise<void> {
  if (group === undefined) return;
  await chown(dir, -1, group);
  await chmod(dir, 0o750);
}

/** Where the copy of `path` goes under `root`; a path that would land outside it (`..`) is refused. */
function copyPath(root: string, path: string): string {
  const copy = join(root, path);
  if (!isInside(root, copy) || copy === root) throw new GatehouseError('SEAL_FAILED', `${path}: would be sealed outside the private directory`);
  return copy;
}

async function createCopy(copy: string): Promise<FileHandle> {
  try {
    // O_EXCL | O_NOFOLLOW: the copy is a new file of ours, never something already at that name.
    return await open(copy, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    throw new GatehouseError('SEAL_FAILED', `cannot create the sealed copy ${copy}: ${fsError(error, copy).message}`, { cause: error });
  }
}

async function writeAll(handle: FileHandle, chunk: Buffer): Promise<void> {
  for (let written = 0; written < chunk.length; ) {
    written += (await handle.write(chunk, written, chunk.length - written)).bytesWritten;
  }
}

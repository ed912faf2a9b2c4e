import { realpath, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { glob } from 'tinyglobby';
import { GatehouseError } from '../errors.js';
import { checkFileSafety, isInside, type SafetyOptions } from './file-safety.js';
import { fsError } from './fs-error.js';

/** A file that passed every file-safety check. */
export interface PluginCandidate {
  /** The path relative to the plugin directory, with `/` separators: unique within the directory. */
  name: string;
  /** Absolute path as found. */
  path: string;
  /** Absolute path with every symbolic link resolved. */
  realPath: string;
  size: number;
  mode: number;
  uid: number;
}

/** One line of a discovery report: a safe candidate, or the first check the file failed. */
export type DiscoveryResult =
  | { ok: true; candidate: PluginCandidate }
  | { ok: false; name: string; path: string; error: GatehouseError };

/**
 * Finds files under `dir` matching the glob `patterns` (tinyglobby syntax, relative to `dir`) and runs
 * the file-safety checks on each. Symbolic links are neither followed nor returned, and dot files are
 * skipped. Results are sorted by name; unsafe files are reported, not thrown, so a caller can print one
 * line per plugin. A `dir` that is not a directory is FILE_NOT_FOUND.
 */
export async function discover(dir: string, patterns: readonly string[], options: DiscoverOptions = {}): Promise<DiscoveryResult[]> {
  if (patterns.length === 0) throw new GatehouseError('INVALID_OPTIONS', 'discover: no glob patterns given');
  const { root, realRoot } = await pluginDirectory(dir);
  // Following links while walking would let a link inside the directory pull in a whole foreign tree.
  const globIn = (some: readonly string[]) => glob(some, { cwd: realRoot, followSymbolicLinks: false, expandDirectories: false, dot: false });
  if (!options.everyPatternMatches || patterns.length === 1) return checkNamed(root, realRoot, (await globIn(patterns)).sort(), options);
  const each = await Promise.all(patterns.map((pattern) => globIn([pattern])));
  const names = [...new Set(each.flat())].sort();
  // A typo in one of several patterns would leave its plugins out of what is signed, without a word.
  const unmatched = patterns.filter((_, index) => each[index]!.length === 0);
  if (names.length > 0 && unmatched.length > 0) {
    throw new GatehouseError('FILE_NOT_FOUND', `no file in ${root} matches ${unmatched.join(', ')} (the other patterns match); check the pattern (dot files are never listed)`);
  }
  return checkNamed(root, realRoot, names, options);
}

export interface DiscoverOptions extends Pick<SafetyOptions, 'uid'> {
  /**
   * Each pattern must match a file when any does (FILE_NOT_FOUND names the one that matches nothing): for a listing
   * that is signed, where a misspelt pattern would leave its plugin out. No file at all is the caller's to judge.
   */
  everyPatternMatches?: boolean;
}

/**
 * The checks {@link discover} runs, on files named relative to `dir` (the lines of a SHA256SUMS file), in
 * the order given: a list of names passes exactly what a pattern matching them would.
 */
export async function discoverNamed(
  dir: string,
  names: readonly string[],
  options: Pick<SafetyOptions, 'uid'> = {},
): Promise<DiscoveryResult[]> {
  const { root, realRoot } = await pluginDirectory(dir);
  return checkNamed(root, realRoot, names, options);
}

/** `dir` made absolute, and with every link resolved; FILE_NOT_FOUND when it is not a directory. */
async function pluginDirectory(dir: string): Promise<{ root: string; realRoot: string }> {
  const root = resolve(dir);
  let realRoot: string;
  try {
    realRoot = await realpath(root);
    // A file given for the directory would match nothing, and an empty manifest or report would hide the mistake.
    if (!(await stat(realRoot)).isDirectory()) throw new GatehouseError('FILE_NOT_FOUND', `${root}: not a directory; give the directory that holds the plugins`);
  } catch (error) {
    throw fsError(error, root);
  }
  return { root, realRoot };
}

function checkNamed(root: string, realRoot: string, names: readonly string[], options: Pick<SafetyOptions, 'uid'>): Promise<DiscoveryResult[]> {
  return Promise.all(
    names.map(async (name): Promise<DiscoveryResult> => {
      const path = join(root, name);
      // A pattern such as `../x` or an absolute one would reach files the plugin directory does not own.
      if (!isInside(realRoot, join(realRoot, name))) {
        throw new GatehouseError('INVALID_OPTIONS', `discover: pattern matched ${name}, outside ${root}`);
      }
      try {
        const safe = await checkFileSafety(path, root, { ...options, executable: true });
        return { ok: true, candidate: { name, ...safe } };
      } catch (error) {
        if (!(error instanceof GatehouseError)) throw error;
        return { ok: false, name, path, error };
      }
    }),
  );
}

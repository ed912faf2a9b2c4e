import { isAbsolute, resolve } from 'node:path';
import { discover } from '../discover/discover.js';
import { checkFileSafety } from '../discover/file-safety.js';
import { GatehouseError } from '../errors.js';
import { digestOf, sha256Files, type FileHashResult } from './hash.js';
import type { Manifest, ManifestPlugin } from './manifest.js';
import { checkScriptInterpreter } from './script-interpreter.js';
import { notAsSigned } from './mismatch.js';
import { checkPackageTree } from './package-tree.js';

/** One line of `gatehouse verify`: a plugin whose files are all safe and as the manifest says, or the first problem. */
export type PluginVerification = { name: string; path: string; ok: true } | { name: string; path: string; ok: false; error: GatehouseError };

export interface VerifyPluginsOptions {
  /** Also report every file matching these patterns that the manifest does not list (PLUGIN_NOT_IN_MANIFEST). */
  patterns?: readonly string[];
  /** Files the patterns match that are no plugins (the manifest and its signatures): never reported as unlisted. */
  notPlugins?: readonly string[];
  /** As in the file-safety checks: the user whose files may be trusted besides root's. */
  uid?: number;
  concurrency?: number;
}

interface FileCheck {
  plugin: number;
  file: string;
  root: string;
  executable: boolean;
  /** Run by exec itself, so a `#!` line in it names another file that runs. */
  directly?: boolean;
  expected?: { sha256: string; size: number };
}

/**
 * Checks the plugins of a (verified) manifest as installed in `dir`: every file each one runs passes the
 * file-safety checks and has the manifest's size and SHA-256. One result per plugin, in manifest order,
 * then one per unlisted file if `patterns` are given. Launching still goes through {@link sealPlugin}:
 * a file that is fine now can be swapped before it runs.
 */
export async function verifyPlugins(manifest: Manifest, dir: string, options: VerifyPluginsOptions = {}): Promise<PluginVerification[]> {
  const checks = manifest.plugins.flatMap((plugin, index) => filesOf(plugin, index, dir));
  const problems = await Promise.all(
    checks.map((check) =>
      checkFileSafety(check.file, check.root, { executable: check.executable, uid: options.uid })
        // The `#!` interpreter of a plugin run directly runs too, and must be as safe.
        .then(() => (check.directly ? checkScriptInterpreter(check.file, { uid: options.uid }) : undefined))
        .then(() => undefined, asGatehouseError),
    ),
  );
  const toHash = checks.flatMap((check, i) => (check.expected && !problems[i] ? [i] : []));
  const digests = await sha256Files(
    toHash.map((i) => checks[i]?.file ?? ''),
    options.concurrency,
  );
  toHash.forEach((checkIndex, i) => {
    problems[checkIndex] = mismatch(checks[checkIndex], digests[i]);
  });
  const results: PluginVerification[] = await Promise.all(
    manifest.plugins.map(async (plugin, index) => {
      const path = resolve(dir, plugin.path);
      // A package is also wrong when its directory holds more than was signed (a planted module).
      const error = problems.find((problem, i) => problem && checks[i]?.plugin === index) ?? (await checkPackageTree(plugin, dir).then(() => undefined, asGatehouseError));
      return error ? { name: plugin.name, path, ok: false, error } : { name: plugin.name, path, ok: true };
    }),
  );
  if (options.patterns) {
    const listed = new Set([...checks.map((check) => check.file), ...(options.notPlugins ?? []).map((file) => resolve(file))]);
    for (const found of await discover(dir, options.patterns, { uid: options.uid })) {
      const path = found.ok ? found.candidate.path : found.path;
      const name = found.ok ? found.candidate.name : found.name;
      // A plugin the manifest does not list may be a leftover or a plant; either way nobody signed it.
      if (!listed.has(resolve(path))) results.push({ name, path, ok: false, error: new GatehouseError('PLUGIN_NOT_IN_MANIFEST', `${name}: not in manifest version ${manifest.version}`) });
    }
  }
  return results;
}

function filesOf(plugin: ManifestPlugin, index: number, dir: string): FileCheck[] {
  const interpreter = plugin.interpreter;
  const checks: FileCheck[] = [{ plugin: index, file: resolve(dir, plugin.path), root: dir, executable: !interpreter, directly: !interpreter, expected: plugin }];
  for (const file of plugin.files ?? []) checks.push({ plugin: index, file: resolve(dir, file.path), root: dir, executable: false, expected: file });
  if (interpreter) {
    // A system interpreter that others can write to would run their code for every plugin, pinned or not.
    const root = isAbsolute(interpreter.path) ? '/' : dir;
    const pinned = interpreter.sha256 !== undefined && interpreter.size !== undefined ? { sha256: interpreter.sha256, size: interpreter.size } : undefined;
    // The kernel runs the interpreter directly: its own `#!` chain runs too.
    checks.push({ plugin: index, file: resolve(dir, interpreter.path), root, executable: true, directly: true, expected: pinned });
  }
  return checks;
}

function mismatch(check: FileCheck | undefined, result: FileHashResult | undefined): GatehouseError | undefined {
  let digest;
  try {
    digest = digestOf(result);
  } catch (error) {
    return asGatehouseError(error);
  }
  const expected = check?.expected;
  if (!check || !expected) return undefined;
  if (digest.size !== expected.size) return notAsSigned('SIZE_MISMATCH', check.file, `${digest.size} bytes`, `${expected.size} bytes`);
  if (digest.sha256 !== expected.sha256) return notAsSigned('DIGEST_MISMATCH', check.file, `SHA-256 ${digest.sha256}`, expected.sha256);
  return undefined;
}

function asGatehouseError(error: unknown): GatehouseError {
  if (error instanceof GatehouseError) return error;
  throw error;
}

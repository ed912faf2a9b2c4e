/**
 * `gatehouse verify`: checks a signed manifest against the trusted keys, then every plugin it lists as
 * installed, and prints one line per plugin.
 */
import { dirname } from 'node:path';
import { verifyInstalled } from '../verify/install.js';
import { verifyPlugins, type PluginVerification } from '../verify/installed-plugins.js';
import { findSignatureFiles } from '../verify/manifest-files.js';
import type { Manifest } from '../verify/manifest.js';
import { parseCommandLine, usageError } from './command-line.js';
import { codeAndMessage, describeError, reportFailure } from './failures.js';
import { MANIFEST_OPTIONS, MANIFEST_OPTIONS_HELP, manifestSource, verifiedManifest } from './manifest-policy.js';
import { escapeControls, writeStdoutLine } from './terminal.js';

const COMMAND = 'verify';

const HELP = `Usage: gatehouse verify --manifest FILE --trust DIR [options] [DIR]
       gatehouse verify --lock FILE DIR

Verifies the manifest's signatures (enough distinct trusted keys, not expired, not older than --state
allows), then checks every plugin it lists as installed in DIR (default: the manifest's directory):
each file it runs passes the file-safety checks and has the manifest's size and SHA-256. Prints one
line per plugin: "ok NAME sha256=HEX" or "FAIL NAME: CODE: message".

Options:
${MANIFEST_OPTIONS_HELP}
  --glob PATTERN               also report files in DIR matching PATTERN that the manifest does not
                               list; repeatable
  --lock FILE                  check DIR (a gatehouse install --into directory) against its lock file:
                               the release, the manifest digest, each plugin's version and tree
  --json                       one JSON object per plugin instead: {"name", "path", "ok", "sha256"} or
                               {"name", "path", "ok", "code", "message"}
  -h, --help                   show this help

Exit status: 0 every plugin ok, 1 the manifest or any plugin failed, 2 usage error.
`;

const OPTIONS = {
  ...MANIFEST_OPTIONS,
  glob: { type: 'string', multiple: true },
  lock: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function verifyCommand(argv: readonly string[]): Promise<number> {
  try {
    const { values, positionals } = parseCommandLine(COMMAND, argv, OPTIONS);
    if (values.help === true) {
      await writeStdoutLine(HELP.trimEnd());
      return 0;
    }
    if (values.lock !== undefined) return await verifyLock(values.lock, positionals, values.manifest !== undefined);
    const source = manifestSource(COMMAND, values);
    if (source === undefined) throw usageError(COMMAND, '--manifest FILE is required');
    if (positionals.length > 1) throw usageError(COMMAND, 'give at most one plugin DIR');
    let manifest: Manifest;
    try {
      manifest = (await verifiedManifest(source)).manifest;
    } catch (error) {
      return reportFailure(COMMAND, describeError(error, (e) => `manifest: ${codeAndMessage(e)}`));
    }
    const dir = positionals[0] ?? dirname(source.manifest);
    // The manifest and its signatures often sit among the plugins: they are not unlisted plugins.
    const notPlugins = [source.manifest, ...(await findSignatureFiles(source.manifest))];
    const results = await verifyPlugins(manifest, dir, { patterns: values.glob, notPlugins });
    for (const [index, result] of results.entries()) {
      // Unlisted files come after the manifest's plugins and always fail, so only ok results need a digest.
      const sha256 = manifest.plugins[index]?.sha256 ?? '';
      await writeStdoutLine(escapeControls(values.json === true ? jsonLine(result, sha256) : textLine(result, sha256)));
    }
    return results.every((result) => result.ok) ? 0 : 1;
  } catch (error) {
    return reportFailure(COMMAND, describeError(error));
  }
}

async function verifyLock(lockPath: string, positionals: string[], withManifest: boolean): Promise<number> {
  if (withManifest) throw usageError(COMMAND, 'give --lock or --manifest, not both');
  const [dir, ...extra] = positionals;
  if (dir === undefined || extra.length > 0) throw usageError(COMMAND, '--lock FILE takes one DIR: the directory gatehouse install installed into');
  const lock = await verifyInstalled(dir, lockPath);
  for (const plugin of lock.current.plugins) await writeStdoutLine(escapeControls(`ok ${plugin.name}${plugin.version ? `@${plugin.version}` : ''} tree=${plugin.tree}`));
  return 0;
}

function textLine(result: PluginVerification, sha256: string): string {
  return result.ok ? `ok ${result.name} sha256=${sha256}` : `FAIL ${result.name}: ${codeAndMessage(result.error)}`;
}

function jsonLine(result: PluginVerification, sha256: string): string {
  const { name, path } = result;
  if (result.ok) return JSON.stringify({ name, path, ok: true, sha256 });
  return JSON.stringify({ name, path, ok: false, code: result.error.code, message: result.error.message });
}

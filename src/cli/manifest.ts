/** `gatehouse manifest create` and `gatehouse manifest sign`: making a manifest and signing it. */
import { access } from 'node:fs/promises';
import { writeFileAtomic, writeNewFile } from '../verify/atomic-file.js';
import { readSecretKeyFile } from '../verify/key-files.js';
import { formatManifest, MAX_MANIFEST_BYTES, type Manifest } from '../verify/manifest.js';
import { createManifest } from '../verify/manifest-create.js';
import type { PackageSpec } from '../verify/package-create.js';
import { findSignatureFiles } from '../verify/manifest-files.js';
import { parseSignature } from '../verify/minisign-signature.js';
import { MAX_MINISIGN_FILE_CHARS } from '../verify/minisign-text.js';
import { readLimited } from '../discover/untrusted-file.js';
import { manifestFromSha256Sums } from '../verify/sha256sums.js';
import { signManifest } from '../verify/sign-manifest.js';
import { type CommandLine, parseCommandLine, usageError } from './command-line.js';
import { describeError, reportFailure } from './failures.js';
import { writeStdoutLine } from './terminal.js';

const COMMAND = 'manifest';
const DEFAULT_VERSION = 1;
/** Long enough for a release cycle, short enough that a frozen host notices within a quarter. */
const DEFAULT_EXPIRES_IN_DAYS = 90;
const DAY_MS = 86_400_000;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/;

const HELP = `Usage: gatehouse manifest create DIR [--glob PATTERN...] [--package NAME=SUBDIR...] [--from-sha256sums FILE] [options]
       gatehouse manifest sign MANIFEST --key FILE

create: lists the plugins in DIR with their size and SHA-256, as a gatehouse.manifest/v1 JSON manifest
(see docs/manifest.md). Every file matching the patterns must pass the file-safety checks. With
--from-sha256sums, the files a SHA256SUMS file lists instead, each of which must match its line.
  --glob PATTERN           files to list, relative to DIR; repeatable (default *, or none with --package)
  --package NAME=SUBDIR    list the Node package in DIR/SUBDIR as plugin NAME: its entry and every file
                           in the tree (node_modules, data files), run by node with module resolution
                           confined to the sealed copy; repeatable; symbolic links in it are refused
  --entry FILE             the package's entry, relative to SUBDIR (default: package.json bin, else main)
  --plugin-version SEMVER  the package's version (default: package.json version); one --package only
  --interpreter PATH       absolute path of node for the packages (default: the node running gatehouse)
  --pin-interpreter        record the interpreter's digest, so that a sealed copy of those bytes runs
  --from-sha256sums FILE   list the files of this sha256sum output instead of globbing
  --out FILE               write the manifest to FILE (mode 0644) instead of stdout
  --version N              the manifest's version, higher than any signed before (default ${DEFAULT_VERSION})
  --expires ISO            when hosts stop accepting it, e.g. 2030-01-31T00:00:00Z
  --expires-in DAYS        or this many days from now (default ${DEFAULT_EXPIRES_IN_DAYS})

sign: writes MANIFEST.minisig, or MANIFEST.<KEYID>.minisig if MANIFEST.minisig exists (a further
signer). Signing again with a key replaces that key's signature; another key's is never overwritten.
  --key FILE               an unencrypted minisign secret key, mode 0600 (gatehouse keygen)

Exit status: 0 success, 1 failure, 2 usage error.
`;

const OPTIONS = {
  glob: { type: 'string', multiple: true },
  package: { type: 'string', multiple: true },
  entry: { type: 'string' },
  'plugin-version': { type: 'string' },
  interpreter: { type: 'string' },
  'pin-interpreter': { type: 'boolean' },
  'from-sha256sums': { type: 'string' },
  out: { type: 'string' },
  version: { type: 'string' },
  expires: { type: 'string' },
  'expires-in': { type: 'string' },
  key: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = CommandLine<typeof OPTIONS>['values'];

export async function manifestCommand(argv: readonly string[]): Promise<number> {
  try {
    const { values, positionals } = parseCommandLine(COMMAND, argv, OPTIONS);
    if (values.help === true) {
      await writeStdoutLine(HELP.trimEnd());
      return 0;
    }
    const [action, target, ...extra] = positionals;
    if (target === undefined) throw usageError(COMMAND, action === undefined ? 'no action given' : `no ${action === 'sign' ? 'MANIFEST' : 'DIR'} given`);
    if (extra.length > 0) throw usageError(COMMAND, `unexpected argument ${JSON.stringify(extra[0])}`);
    if (action === 'create') await create(target, values);
    else if (action === 'sign') await sign(target, values);
    else throw usageError(COMMAND, `unknown action ${JSON.stringify(action)}; actions: create, sign`);
    return 0;
  } catch (error) {
    return reportFailure(COMMAND, describeError(error));
  }
}

async function create(dir: string, values: Values): Promise<void> {
  if (values.key !== undefined) throw usageError(COMMAND, '--key goes with manifest sign');
  if (values.glob !== undefined && values['from-sha256sums'] !== undefined) throw usageError(COMMAND, 'give --glob or --from-sha256sums, not both');
  const version = parseVersion(values.version);
  const expires = parseExpiry(values.expires, values['expires-in']);
  let manifest: Manifest;
  if (values['from-sha256sums'] === undefined) {
    manifest = await createManifest(dir, { patterns: values.glob, version, expires, packages: packageSpecs(values) });
  } else {
    if (values.package !== undefined) throw usageError(COMMAND, 'give --package with --glob, not with --from-sha256sums');
    const sums = values['from-sha256sums'];
    // Bounded, regular files only: a FIFO would hang the command, /dev/zero grow it without end.
    const text = (await readLimited(sums, MAX_MANIFEST_BYTES, 'MANIFEST_TOO_LARGE')).toString('utf8');
    manifest = await manifestFromSha256Sums(text, { dir, version, expires });
  }
  const text = formatManifest(manifest);
  if (values.out === undefined) process.stdout.write(text);
  else await writeFileAtomic(values.out, text, 0o644);
}

async function sign(manifestPath: string, values: Values): Promise<void> {
  const stray = (
    ['glob', 'from-sha256sums', 'out', 'version', 'expires', 'expires-in', 'package', 'entry', 'plugin-version', 'interpreter', 'pin-interpreter'] as const
  ).find((name) => values[name] !== undefined);
  if (stray !== undefined) throw usageError(COMMAND, `--${stray} goes with manifest create`);
  if (values.key === undefined) throw usageError(COMMAND, '--key FILE is required');
  // Read as verify reads it (bounded, regular files only): a FIFO would hang signing, /dev/zero grow it without end.
  const bytes = await readLimited(manifestPath, MAX_MANIFEST_BYTES, 'MANIFEST_TOO_LARGE');
  const secretKey = await readSecretKeyFile(values.key);
  const signature = signManifest(bytes, secretKey);
  // Signing again with the same key replaces that key's signature: a second file would count once anyway.
  const own = await signatureFileOf(manifestPath, secretKey.keyId);
  if (own !== undefined) {
    await writeFileAtomic(own, signature, 0o644);
    await writeStdoutLine(`signed by key ${secretKey.keyId}: ${own} (replaced this key's earlier signature)`);
    return;
  }
  const main = `${manifestPath}.minisig`;
  // The names findSignatureFiles reads: the first signer's, then one per further key.
  const file = (await exists(main)) ? `${manifestPath}.${secretKey.keyId}.minisig` : main;
  // A new file only: an existing signature, perhaps another signer's, is never replaced.
  await writeNewFile(file, signature, 0o644, 'a signature (remove it to sign again)');
  await writeStdoutLine(`signed by key ${secretKey.keyId}: ${file}`);
}

/** The signature file of the manifest made by `keyId`, if any; unreadable or malformed ones are someone else's. */
async function signatureFileOf(manifestPath: string, keyId: string): Promise<string | undefined> {
  for (const file of await findSignatureFiles(manifestPath)) {
    try {
      if (parseSignature((await readLimited(file, MAX_MINISIGN_FILE_CHARS, 'SIGNATURE_INVALID')).toString('utf8')).keyId === keyId) return file;
    } catch {
      // not a signature we can read: leave it alone
    }
  }
  return undefined;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** --package NAME=SUBDIR (repeatable) with the options that shape every package (or the one package). */
function packageSpecs(values: Values): PackageSpec[] {
  const packages = values.package ?? [];
  const single = (['entry', 'plugin-version'] as const).find((name) => values[name] !== undefined);
  if (single !== undefined && packages.length !== 1) throw usageError(COMMAND, `--${single} goes with exactly one --package`);
  if (packages.length === 0 && (values.interpreter !== undefined || values['pin-interpreter'] !== undefined)) {
    throw usageError(COMMAND, '--interpreter and --pin-interpreter go with --package');
  }
  return packages.map((text) => {
    const at = text.indexOf('=');
    if (at <= 0 || at === text.length - 1) throw usageError(COMMAND, `--package takes NAME=SUBDIR, got ${JSON.stringify(text)}`);
    return {
      name: text.slice(0, at),
      dir: text.slice(at + 1),
      ...(values.entry === undefined ? {} : { entry: values.entry }),
      ...(values['plugin-version'] === undefined ? {} : { version: values['plugin-version'] }),
      ...(values.interpreter === undefined ? {} : { interpreter: values.interpreter }),
      ...(values['pin-interpreter'] === true ? { pinInterpreter: true } : {}),
    };
  });
}

function parseVersion(text: string | undefined): number {
  if (text === undefined) return DEFAULT_VERSION;
  const version = /^[1-9][0-9]{0,15}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(version)) throw usageError(COMMAND, '--version must be a whole number from 1 to 2^53-1');
  return version;
}

function parseExpiry(iso: string | undefined, days: string | undefined): Date {
  if (iso !== undefined && days !== undefined) throw usageError(COMMAND, 'give --expires or --expires-in, not both');
  if (iso !== undefined) {
    // A time zone is required: a local time would expire at a different instant on every host.
    const expires = ISO_TIME.test(iso) ? new Date(iso) : new Date(NaN);
    if (Number.isNaN(expires.getTime()) || !isCalendarDate(iso)) throw usageError(COMMAND, '--expires must be an ISO 8601 time, e.g. 2030-01-31T00:00:00Z');
    // Every host would refuse such a manifest as expired the moment it is signed.
    if (expires.getTime() <= Date.now()) throw usageError(COMMAND, `--expires ${iso} is in the past: hosts would refuse the manifest as expired; give a later time or --expires-in DAYS`);
    return expires;
  }
  if (days !== undefined && !/^[1-9][0-9]{0,4}$/.test(days)) throw usageError(COMMAND, '--expires-in must be a whole number of days from 1 to 99999');
  return new Date(Date.now() + Number(days ?? DEFAULT_EXPIRES_IN_DAYS) * DAY_MS);
}

/** Whether the date part names a real day: Date rolls 30 February over into March without complaint. */
function isCalendarDate(iso: string): boolean {
  const [year = 0, month = 0, day = 0] = iso.slice(0, 10).split('-').map(Number);
  return new Date(Date.UTC(year, month - 1, day)).getUTCDate() === day;
}

/** `gatehouse install` and `gatehouse release`: signed releases, installed atomically with a lock file. */
import { installRelease, rollbackRelease } from '../verify/install.js';
import { readSecretKeyFile } from '../verify/key-files.js';
import { createRelease } from '../verify/release.js';
import { parseCommandLine, usageError } from './command-line.js';
import { describeError, reportFailure } from './failures.js';
import { manifestPolicy, policySource } from './manifest-policy.js';
import { writeStdoutLine } from './terminal.js';

const INSTALL_HELP = `Usage: gatehouse install SOURCE --trust DIR --into PLUGINS_DIR [--threshold K] [--state FILE] [--lock FILE]
       gatehouse install --rollback --trust DIR --into PLUGINS_DIR [--threshold K] [--state FILE] [--lock FILE]

Installs a signed release (a directory or .tar.gz made by gatehouse release: manifest.json, its
signatures, the files). Archives are read strictly (no links, devices, traversal; size and entry caps).
The signatures, threshold and expiry are verified, a manifest older than the installed one or than
--state is refused, every file is checked and nothing unlisted may come with them; then PLUGINS_DIR (a
link) is switched to the new release in one rename, keeping the previous one. On failure nothing changes.
--rollback returns to the previous release only if the policy still accepts it (with --state it does
not: that is a rollback). The lock file (default PLUGINS_DIR.lock.json) records what is installed;
check it with gatehouse verify --lock. One install or rollback of PLUGINS_DIR runs at a time: another
one running (PLUGINS_DIR.lck names its pid) is INSTALL_LOCKED; one left by a killed install is taken over.
A lock, lock file, link or releases directory beside PLUGINS_DIR that another user made or can write is
refused before anything there is read or removed (a sticky directory such as /tmp is fine).

Exit status: 0 installed, 1 failure (nothing changed), 2 usage error.
`;

const RELEASE_HELP = `Usage: gatehouse release DIR --key FILE --out RELEASE.tar.gz

Signs DIR/manifest.json (made by gatehouse manifest create) with the secret key and packs it, the
signature and every file it lists, each checked against its digest, into a reproducible .tar.gz.

Exit status: 0 written, 1 failure, 2 usage error.
`;

const INSTALL_OPTIONS = {
  trust: { type: 'string' },
  into: { type: 'string' },
  threshold: { type: 'string' },
  state: { type: 'string' },
  lock: { type: 'string' },
  rollback: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const RELEASE_OPTIONS = {
  key: { type: 'string' },
  out: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function installCommand(argv: readonly string[]): Promise<number> {
  try {
    const { values, positionals } = parseCommandLine('install', argv, INSTALL_OPTIONS);
    if (values.help === true) {
      await writeStdoutLine(INSTALL_HELP.trimEnd());
      return 0;
    }
    if (values.trust === undefined) throw usageError('install', '--trust DIR is required');
    if (values.into === undefined) throw usageError('install', '--into PLUGINS_DIR is required');
    const policy = await manifestPolicy(policySource('install', { ...values, trust: values.trust }));
    const common = { into: values.into, policy, ...(values.lock === undefined ? {} : { lockPath: values.lock }) };
    const [source, ...extra] = positionals;
    if (extra.length > 0) throw usageError('install', `unexpected argument ${JSON.stringify(extra[0])}`);
    if (values.rollback === true) {
      if (source !== undefined) throw usageError('install', '--rollback takes no SOURCE');
      const result = await rollbackRelease(common);
      await writeStdoutLine(`rolled back to manifest version ${result.lock.current.manifestVersion}: ${result.release}`);
      return 0;
    }
    if (source === undefined) throw usageError('install', 'no SOURCE given');
    const result = await installRelease({ ...common, source });
    await writeStdoutLine(`installed manifest version ${result.lock.current.manifestVersion} (${result.lock.current.plugins.length} plugins): ${result.release}`);
    return 0;
  } catch (error) {
    return reportFailure('install', describeError(error));
  }
}

export async function releaseCommand(argv: readonly string[]): Promise<number> {
  try {
    const { values, positionals } = parseCommandLine('release', argv, RELEASE_OPTIONS);
    if (values.help === true) {
      await writeStdoutLine(RELEASE_HELP.trimEnd());
      return 0;
    }
    const [dir, ...extra] = positionals;
    if (dir === undefined) throw usageError('release', 'no DIR given');
    if (extra.length > 0) throw usageError('release', `unexpected argument ${JSON.stringify(extra[0])}`);
    if (values.key === undefined) throw usageError('release', '--key FILE is required');
    if (values.out === undefined) throw usageError('release', '--out RELEASE.tar.gz is required');
    const result = await createRelease(dir, await readSecretKeyFile(values.key), values.out);
    await writeStdoutLine(`release ${result.out}: ${result.files} files, sha256=${result.sha256}`);
    return 0;
  } catch (error) {
    return reportFailure('release', describeError(error));
  }
}

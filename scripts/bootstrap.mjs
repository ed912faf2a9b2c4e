// Runs before `npm test` and `npm run demo` (pretest/predemo): on a fresh clone, or after package-lock.json
// changed, installs exactly the locked dependencies with `npm ci`, so that the README's two commands work
// with nothing run before them. Plain Node with no dependencies, since it runs before any are installed.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import console from 'node:console';
import process from 'node:process';

const root = join(import.meta.dirname, '..');

/** The `packages` map of a lockfile, or undefined when it is missing or not a lockfile. */
function lockedPackages(file) {
  try {
    const lock = JSON.parse(readFileSync(file, 'utf8'));
    return typeof lock.packages === 'object' && lock.packages !== null ? lock.packages : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Why node_modules does not match package-lock.json, or undefined when it does. npm keeps what it installed
 * in node_modules/.package-lock.json; an optional package may be absent (another platform's esbuild binary).
 */
function staleness() {
  const wanted = lockedPackages(join(root, 'package-lock.json'));
  if (wanted === undefined) return undefined; // no lockfile: nothing to check against, npm itself will say
  const installed = lockedPackages(join(root, 'node_modules', '.package-lock.json'));
  if (installed === undefined) return 'node_modules is missing';
  for (const [path, entry] of Object.entries(wanted)) {
    if (path === '' || !path.startsWith('node_modules/')) continue;
    const have = installed[path];
    if (have === undefined) {
      if (entry.optional === true) continue;
      return `${path} is not installed`;
    }
    if (have.version !== entry.version) return `${path} is ${have.version}, package-lock.json wants ${entry.version}`;
  }
  return undefined;
}

const reason = staleness();
if (reason !== undefined) {
  // npm sets npm_execpath to its own CLI when it runs a script: run that one, through this Node, no shell.
  const npmCli = process.env.npm_execpath;
  if (npmCli === undefined || npmCli === '') {
    console.error(`gatehouse: ${reason}; run \`npm ci\` in ${root} first`);
    process.exit(1);
  }
  console.error(`gatehouse: ${reason}: installing the locked dependencies with npm ci`);
  // --ignore-scripts: our own `prepare` would build twice, and no dependency needs an install script.
  // The environment is the user's own: npm needs its registry, proxy and cache settings from it.
  const run = spawnSync(process.execPath, [npmCli, 'ci', '--no-audit', '--no-fund', '--ignore-scripts'], {
    cwd: root,
    stdio: 'inherit',
    env: process.env,
    shell: false,
  });
  if (run.status !== 0) {
    console.error(`gatehouse: npm ci failed (${run.error?.message ?? `exit ${run.status ?? run.signal}`}); see its output above`);
    process.exit(1);
  }
}

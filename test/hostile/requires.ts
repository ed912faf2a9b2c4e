import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ExecutionContext } from 'ava';
import { repoRoot } from '../helpers/paths.js';
import { findSystemTool } from '../../src/host/system-tools.js';

/**
 * The tool's absolute path, or undefined after failing the test under CI=true (.ci/run installs every
 * tool the suite uses, so a missing one there is a broken setup) or logging a visible skip locally.
 */
export function requireTool(t: ExecutionContext, name: string): string | undefined {
  const path = findSystemTool(name);
  if (path !== undefined) return path;
  if (process.env.CI === 'true') {
    t.fail(`CI=true: ${name} is not installed (see .ci/run)`);
  } else {
    t.log(`skipped: ${name} is not installed`);
    t.pass();
  }
  return undefined;
}

/**
 * A prefix that runs its command in a private mount namespace where the system tool `name` is
 * /dev/null, which nobody can execute; undefined (as requireTool) without unshare or the tool.
 */
export function withoutTool(t: ExecutionContext, name: string): string[] | undefined {
  const unshare = requireTool(t, 'unshare');
  const tool = unshare && requireTool(t, name);
  if (!unshare || !tool) return undefined;
  return [unshare, '-rm', '/bin/sh', '-c', `mount --bind /dev/null ${tool} && exec "$@"`, 'sh'];
}

/** Like requireTool, for what only root can do (another uid, a network namespace set up by hand). */
export function requireRoot(t: ExecutionContext): boolean {
  if (process.getuid?.() === 0) return true;
  if (process.env.CI === 'true') {
    t.fail('CI=true: this test needs root (CI runs as root)');
  } else {
    t.log('skipped: needs root');
    t.pass();
  }
  return false;
}

/**
 * Like requireRoot, for a test that runs code from this checkout as another user: every directory from
 * the checkout up to / must be searchable by others (a clone under a 0700 temporary directory is not).
 */
export function requireCheckoutReachable(t: ExecutionContext): boolean {
  for (let dir = repoRoot; ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) {
      const why = `another user cannot reach this checkout: ${dir} is not searchable by others`;
      if (process.env.CI === 'true') {
        t.fail(`CI=true: ${why}`);
      } else {
        t.log(`skipped: ${why}`);
        t.pass();
      }
      return false;
    }
    if (dirname(dir) === dir) return true;
  }
}

// `gatehouse --version` and `gatehouse help COMMAND`, as a user runs them.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { repoRoot } from '../helpers/paths.js';

const execFileAsync = promisify(execFile);
const cli = join(repoRoot, 'dist/src/cli/main.js');

async function gatehouse(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [cli, ...args], { cwd: repoRoot, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failure.code ?? -1, stdout: failure.stdout ?? '', stderr: failure.stderr ?? '' };
  }
}

test('gatehouse --version prints the package name and version', async (t) => {
  const { name, version } = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { name: string; version: string };
  for (const flag of ['--version', '-V']) {
    const result = await gatehouse([flag]);
    t.is(result.code, 0, result.stderr);
    t.is(result.stdout, `${name} ${version}\n`);
  }
});

test('gatehouse help COMMAND prints what COMMAND --help prints; help alone the command list', async (t) => {
  for (const command of ['call', 'keygen', 'manifest', 'verify', 'audit']) {
    const viaHelp = await gatehouse(['help', command]);
    t.is(viaHelp.code, 0, `${command}: ${viaHelp.stderr}`);
    t.is(viaHelp.stdout, (await gatehouse([command, '--help'])).stdout);
    t.regex(viaHelp.stdout, new RegExp(`^Usage: gatehouse ${command}`));
  }
  const list = await gatehouse(['help']);
  t.is(list.code, 0);
  t.regex(list.stdout, /gatehouse help <command>/);
  const unknown = await gatehouse(['help', 'nope']);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /unknown command "nope"/);
});

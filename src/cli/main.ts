#!/usr/bin/env node
// The `gatehouse` command line. Each subcommand is one entry in SUBCOMMANDS and returns its exit code.
import { auditCommand } from './audit.js';
import { bundleCommand } from './bundle.js';
import { installCommand, releaseCommand } from './install.js';
import { callCommand } from './call.js';
import { keygenCommand } from './keygen.js';
import { manifestCommand } from './manifest.js';
import { verifyCommand } from './verify.js';
import { packageVersion } from './version.js';

interface Subcommand {
  summary: string;
  run(argv: readonly string[]): Promise<number>;
}

const SUBCOMMANDS: ReadonlyMap<string, Subcommand> = new Map([
  ['call', { summary: 'launch a go-plugin gRPC plugin and call its methods with proto3 JSON', run: callCommand }],
  ['keygen', { summary: 'generate a minisign key pair for signing manifests', run: keygenCommand }],
  ['manifest', { summary: 'create a plugin manifest, or sign one', run: manifestCommand }],
  ['bundle', { summary: 'bundle a TypeScript or JavaScript plugin into one file (esbuild)', run: bundleCommand }],
  ['release', { summary: 'sign a manifest and pack it with its files into a reproducible .tar.gz', run: releaseCommand }],
  ['install', { summary: 'verify and install a signed release atomically, with a lock file; or roll back', run: installCommand }],
  ['verify', { summary: 'check a signed manifest and the plugins it lists', run: verifyCommand }],
  ['audit', { summary: "check an audit log's chain, seal and anchor, show what ran, or print its anchor", run: (argv) => auditCommand(argv) }],
]);

const USAGE_EXIT = 2;

function usage(): string {
  const width = Math.max(...[...SUBCOMMANDS.keys()].map((name) => name.length));
  const lines = [...SUBCOMMANDS].map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`);
  return [
    'Usage: gatehouse <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `gatehouse help <command>` (or `gatehouse <command> --help`) for the options of a command,',
    'and `gatehouse --version` for the version.',
    '',
  ].join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) {
    process.stdout.write(usage());
    return 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  // `gatehouse help COMMAND` is `gatehouse COMMAND --help`, as git and npm have it.
  if (name === 'help') return runCommand(rest[0], ['--help']);
  return runCommand(name, rest);
}

function runCommand(name: string | undefined, rest: readonly string[]): Promise<number> | number {
  const command = name === undefined ? undefined : SUBCOMMANDS.get(name);
  if (command === undefined) {
    const what = name === undefined ? 'no command given' : `unknown command ${JSON.stringify(name)}`;
    process.stderr.write(`gatehouse: ${what}; commands: ${[...SUBCOMMANDS.keys()].join(', ')} (see gatehouse --help)\n`);
    return USAGE_EXIT;
  }
  return command.run(rest);
}

// A closed stdout (`gatehouse call ... | head -1`) is reported by the write that failed; without a
// listener the same error would also crash the process with a stack trace.
process.stdout.on('error', () => {});

const code = await main(process.argv.slice(2));
// Exits explicitly: a plugin that outlived its kill must not keep the command waiting on its pipes.
process.exit(code);

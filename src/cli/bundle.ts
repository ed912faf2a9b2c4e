/** `gatehouse bundle ENTRY --out FILE`: a TypeScript or JavaScript plugin as one file (esbuild). */
import { parseCommandLine, usageError } from './command-line.js';
import { describeError, reportFailure } from './failures.js';
import { escapeControls, writeStdoutLine } from './terminal.js';

const COMMAND = 'bundle';

const HELP = `Usage: gatehouse bundle ENTRY --out FILE [--minify]

Bundles a plugin (TypeScript or JavaScript, e.g. one calling serve() from gatehouse-plugins/plugin) and
everything it imports into one ESM file for Node 20, with esbuild. .proto files imported from code are
embedded as text. List the bundle in a manifest as a script run by node: see docs/plugins.md.

Only the tsconfig.json (or jsconfig.json) nearest above ENTRY is used, for every file. Every file esbuild
reads (modules, that tsconfig, each package.json above them) must be a regular file you or root own,
writable by nobody else, in directories nobody else can use to swap it; else nothing is written.

Options:
  --out FILE    the single file to write (replaced atomically, mode 0644; required): .mjs, or .js
                where package.json says "type": "module" (else Node.js compiles it twice per start)
  --minify      minify the bundle (smaller; measured no faster to start, see docs/plugins.md)
  -h, --help    show this help

Exit status: 0 written, 1 failure (nothing is written), 2 usage error.
`;

const OPTIONS = {
  out: { type: 'string' },
  minify: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function bundleCommand(argv: readonly string[]): Promise<number> {
  try {
    const { values, positionals } = parseCommandLine(COMMAND, argv, OPTIONS);
    if (values.help === true) {
      await writeStdoutLine(HELP.trimEnd());
      return 0;
    }
    const [entry, ...extra] = positionals;
    if (entry === undefined) throw usageError(COMMAND, 'no ENTRY given');
    if (extra.length > 0) throw usageError(COMMAND, `unexpected argument ${JSON.stringify(extra[0])}`);
    if (values.out === undefined || values.out === '') throw usageError(COMMAND, '--out FILE is required');
    // Loaded here, not at start: every other gatehouse command would pay for loading esbuild.
    const { bundlePlugin } = await import('../bundle/bundle.js');
    const result = await bundlePlugin({ entry, out: values.out, minify: values.minify === true });
    // Says which tsconfig shaped the bundle, so that a surprising one is seen before the bundle is signed.
    await writeStdoutLine(
      escapeControls(`bundled ${result.inputs.length} modules into ${result.out} (${result.bytes} bytes), ${result.tsconfig === undefined ? 'no tsconfig.json' : `tsconfig ${result.tsconfig}`}`),
    );
    if (result.moduleTypeWarning !== undefined) process.stderr.write(`${escapeControls(`gatehouse ${COMMAND}: warning: ${result.moduleTypeWarning}`)}\n`);
    return 0;
  } catch (error) {
    return reportFailure(COMMAND, describeError(error));
  }
}

import { build, type BuildFailure, type Message, type Plugin } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GatehouseError } from '../errors.js';
import { writeFileAtomic } from '../verify/atomic-file.js';

export interface BundleOptions {
  /** The plugin's entry (TypeScript or JavaScript). */
  entry: string;
  /** The single file to write (replaced atomically, mode 0644). */
  out: string;
  minify?: boolean;
}

export interface BundleResult {
  out: string;
  bytes: number;
  /** Every source file that went into the bundle, relative to the working directory. */
  inputs: string[];
  /** Set when Node.js would not know the bundle for ES module where it was written: what it costs and what to do. */
  moduleTypeWarning?: string;
}

/**
 * Makes a single-file plugin: the entry and everything it imports (gatehouse-plugins/plugin, grpc-js, its
 * own modules) bundled by esbuild into one ESM file for Node 20, so that the manifest lists one file and the
 * plugin starts without resolving thousands of modules. `.proto` files imported from code are embedded as
 * text, so a codec can be built without reading a data file at run time.
 */
export async function bundlePlugin(options: BundleOptions): Promise<BundleResult> {
  // Checked before anything is built or written: a bundle Node.js would run as CommonJS does not start.
  const scope = await moduleScope(options.out);
  if (scope.type === 'commonjs') {
    throw new GatehouseError(
      'BUNDLE_FAILED',
      `bundle ${options.entry}: the bundle is an ES module, and Node.js runs ${options.out} as CommonJS (${scope.why}); name it .mjs, or write it where package.json says "type": "module"`,
    );
  }
  if (scope.type === 'unreadable') {
    throw new GatehouseError('BUNDLE_FAILED', `bundle ${options.entry}: Node.js would refuse to run ${options.out}: ${scope.why}; fix it first`);
  }
  let result;
  try {
    result = await build({
      entryPoints: [resolve(options.entry)],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      write: false,
      outfile: resolve(options.out),
      minify: options.minify === true,
      legalComments: 'none',
      logLevel: 'silent',
      metafile: true,
      loader: { '.proto': 'text' },
      plugins: [withoutGrpcJsProtoLoader],
      // CommonJS modules inside an ESM bundle (grpc-js) call require() for Node's built-ins.
      banner: { js: "import { createRequire as __gatehouseCreateRequire } from 'node:module';\nconst require = __gatehouseCreateRequire(import.meta.url);" },
    });
  } catch (error) {
    const errors = (error as Partial<BuildFailure>).errors ?? [];
    throw new GatehouseError('BUNDLE_FAILED', `bundle ${options.entry}: ${errors.length > 0 ? errors.slice(0, 3).map(describe).join('; ') : String(error)}`, { cause: error });
  }
  const [output] = result.outputFiles;
  if (output === undefined) throw new GatehouseError('BUNDLE_FAILED', `bundle ${options.entry}: esbuild wrote no output`);
  await writeFileAtomic(options.out, output.contents, 0o644);
  return {
    out: options.out,
    bytes: output.contents.byteLength,
    inputs: Object.keys(result.metafile.inputs).sort(),
    ...(scope.type === 'untyped'
      ? { moduleTypeWarning: `${scope.why}, so Node.js compiles ${options.out} twice at every start (about +17 ms); add "type": "module" there, or name the bundle .mjs` }
      : {}),
  };
}

/**
 * How Node.js will take the file at `out`: by its extension, else by the `type` of the first package.json
 * it finds walking up from the file. With none saying "module", Node 20.19 and later compile an ES module
 * bundle twice at every start (as CommonJS, which fails, then as ESM) and warn on stderr each time: +17 ms,
 * about a tenth of the recommended bundle's start (measured, docs/plugins.md). Said at build time, where
 * it is cheap to fix.
 */
async function moduleScope(out: string): Promise<{ type: 'module' | 'commonjs' | 'untyped' | 'unreadable'; why: string }> {
  const extension = extname(out);
  if (extension === '.mjs') return { type: 'module', why: 'a .mjs file' };
  if (extension === '.cjs') return { type: 'commonjs', why: 'a .cjs file' };
  for (let dir = dirname(resolve(out)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text !== undefined) {
      let type: unknown;
      try {
        type = (JSON.parse(text) as { type?: unknown }).type;
      } catch {
        return { type: 'unreadable', why: `${file} is not valid JSON` };
      }
      if (type === 'module') return { type: 'module', why: `${file} says "type": "module"` };
      if (type === 'commonjs') return { type: 'commonjs', why: `${file} says "type": "commonjs"` };
      return { type: 'untyped', why: `${file} does not say "type": "module"` };
    }
    if (dirname(dir) === dir) return { type: 'untyped', why: `no package.json above ${out} says "type": "module"` };
  }
}

/**
 * grpc-js's channelz and ORCA modules require @grpc/proto-loader, only inside the functions that serve those
 * services, to read .proto files from grpc-js's own directory, which no bundle carries: in a bundle they
 * cannot work. Yet the require put proto-loader and the whole of protobufjs's parser in every bundle, a
 * quarter of the recommended one, compiled at every start (docs/benchmarks.md). They get a stand-in that
 * says so instead; a plugin that imports proto-loader itself still gets the real one.
 */
const GRPC_JS_PROTO_LOADER_USERS = /[\\/]@grpc[\\/]grpc-js[\\/]build[\\/]src[\\/](?:channelz|orca)\.js$/;
const omittedProtoLoader = fileURLToPath(new URL('./omitted-proto-loader.js', import.meta.url));
const withoutGrpcJsProtoLoader: Plugin = {
  name: 'gatehouse-without-grpc-js-proto-loader',
  setup(pluginBuild) {
    pluginBuild.onResolve({ filter: /^@grpc\/proto-loader$/ }, (args) =>
      GRPC_JS_PROTO_LOADER_USERS.test(args.importer) ? { path: omittedProtoLoader } : undefined,
    );
  },
};

function describe(message: Message): string {
  const where = message.location ? `${message.location.file}:${message.location.line}:${message.location.column}: ` : '';
  return `${where}${message.text}`;
}

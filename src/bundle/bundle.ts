import { build, type BuildFailure, type Message, type Plugin } from 'esbuild';
import { lstat } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkOwnedFile, effectiveUid, resolveChecked } from '../discover/file-safety.js';
import { onFile, onFileIfAny } from '../discover/fs-error.js';
import { readLimited } from '../discover/untrusted-file.js';
import { GatehouseError, isGatehouseError } from '../errors.js';
import { writeFileAtomic } from '../verify/atomic-file.js';
import { MAX_PACKAGE_JSON_BYTES } from '../verify/package-create.js';

/** Far above any module a plugin imports (grpc-js's largest is under 1 MiB), far below what strains memory. */
export const MAX_MODULE_BYTES = 64 << 20;

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
  /** The tsconfig.json (or jsconfig.json) esbuild used: the nearest above the entry; none if there is none. */
  tsconfig?: string;
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
  const uid = effectiveUid();
  const checked = new Set<string>();
  const entry = await checkRead(options.entry, uid, options.entry);
  await checkPackageJsonsAbove(entry, uid, options.entry, checked);
  const tsconfig = await nearestTsconfig(entry, uid, options.entry);
  const refusals: GatehouseError[] = [];
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
      // Explicit, so that esbuild looks for no tsconfig.json of its own: one another user put in a shared
      // directory above the project (/tmp) could map an import to their module with "paths".
      ...(tsconfig === undefined ? { tsconfigRaw: '{}' } : { tsconfig }),
      loader: { '.proto': 'text' },
      plugins: [checkedBeforeResolve(uid, options.entry, refusals), checkedBeforeLoad(uid, options.entry, refusals, checked), withoutGrpcJsProtoLoader],
      // CommonJS modules inside an ESM bundle (grpc-js) call require() for Node's built-ins.
      banner: { js: "import { createRequire as __gatehouseCreateRequire } from 'node:module';\nconst require = __gatehouseCreateRequire(import.meta.url);" },
    });
  } catch (error) {
    // A module refused before it was read keeps its own code (FILE_NOT_REGULAR...), as one refused after the build does.
    if (refusals[0] !== undefined) throw refusals[0];
    const errors = (error as Partial<BuildFailure>).errors ?? [];
    throw new GatehouseError('BUNDLE_FAILED', `bundle ${options.entry}: ${errors.length > 0 ? errors.slice(0, 3).map(describe).join('; ') : String(error)}`, { cause: error });
  }
  const [output] = result.outputFiles;
  if (output === undefined) throw new GatehouseError('BUNDLE_FAILED', `bundle ${options.entry}: esbuild wrote no output`);
  const inputs = Object.keys(result.metafile.inputs).sort();
  // Every input passed checkedBeforeLoad, with the package.json files above it: nothing is written before that.
  await writeFileAtomic(options.out, output.contents, 0o644);
  return {
    out: options.out,
    bytes: output.contents.byteLength,
    inputs,
    ...(tsconfig === undefined ? {} : { tsconfig }),
    ...(scope.type === 'untyped'
      ? { moduleTypeWarning: `${scope.why}, so Node.js compiles ${options.out} twice at every start (about +17 ms); add "type": "module" there, or name the bundle .mjs` }
      : {}),
  };
}

/**
 * Refuses `file`, which esbuild reads into a bundle that is then signed, unless it is a regular file the
 * user or root owns, writable by nobody else, below directories nobody else can use to swap it (a sticky
 * one such as /tmp is accepted: what others add there is theirs, and refused as such). Returns its real path.
 */
async function checkRead(file: string, uid: number, entry: string): Promise<string> {
  try {
    // A link or directory on the way that another user owns or can write would let them swap the file.
    const realPath = await resolveChecked(file, uid, () => true);
    const stats = await onFile(realPath, lstat(realPath));
    // A FIFO or device would hang esbuild or feed it endless bytes.
    if (!stats.isFile()) throw new GatehouseError('FILE_NOT_REGULAR', `${file}: not a regular file`);
    // Another user's module, tsconfig.json or package.json would put their code into a bundle we sign.
    checkOwnedFile(file, stats, uid);
    // esbuild holds every file it reads whole: a huge one would grow it without end.
    if (stats.size > MAX_MODULE_BYTES) throw new GatehouseError('BUNDLE_FAILED', `${file}: larger than ${MAX_MODULE_BYTES} bytes`);
    return realPath;
  } catch (error) {
    if (!isGatehouseError(error)) throw error;
    throw new GatehouseError(
      error.code,
      `bundle ${entry}: esbuild reads ${file}, refused: ${error.message}; every file it reads must be yours or root's and writable by nobody else: remove it, chmod go-w it, or move the project to a directory only you can write`,
      { cause: error },
    );
  }
}

/** Checks every package.json esbuild reads walking up from `file` (its "type", "imports", "sideEffects", "main"), each directory once. */
async function checkPackageJsonsAbove(file: string, uid: number, entry: string, checked: Set<string>): Promise<void> {
  for (let dir = dirname(file); !checked.has(dir); dir = dirname(dir)) {
    checked.add(dir);
    const packageJson = join(dir, 'package.json');
    if ((await onFileIfAny(packageJson, lstat(packageJson))) !== undefined) await checkRead(packageJson, uid, entry);
    if (dirname(dir) === dir) return;
  }
}

/**
 * The tsconfig.json or jsconfig.json esbuild would find for the entry (the nearest above it), checked with
 * every file it extends; undefined if none.
 */
async function nearestTsconfig(entry: string, uid: number, given: string): Promise<string | undefined> {
  for (let dir = dirname(entry); ; dir = dirname(dir)) {
    for (const name of ['tsconfig.json', 'jsconfig.json']) {
      const file = join(dir, name);
      if ((await onFileIfAny(file, lstat(file))) !== undefined) {
        const checked = await checkRead(file, uid, given);
        await checkExtended(checked, uid, given, new Set([checked]));
        return checked;
      }
    }
    if (dirname(dir) === dir) return undefined;
  }
}

/** How deep a chain of tsconfig "extends" is followed; real ones are one or two. */
const MAX_EXTENDS_DEPTH = 16;

/**
 * Checks each file `tsconfig` (itself checked) extends, and theirs: esbuild reads the whole chain, and one
 * another user wrote (in a shared node_modules above the project, say) could map any import to a file of
 * their choosing with "paths", or hang the build as a FIFO.
 */
async function checkExtended(tsconfig: string, uid: number, given: string, seen: Set<string>): Promise<void> {
  // Bounded and regular: the file passed checkRead, but may have been swapped since.
  const text = (await readLimited(tsconfig, MAX_PACKAGE_JSON_BYTES, 'BUNDLE_FAILED')).toString('utf8');
  // Only the "extends" value is needed from this JSON-with-comments file; its text is the user's own (checked).
  const found = /"extends"\s*:\s*("(?:[^"\\]|\\.)*"|\[[^\]]*\])/.exec(text)?.[1];
  if (found === undefined) return;
  let targets: unknown;
  try {
    targets = JSON.parse(found);
  } catch {
    throw new GatehouseError('BUNDLE_FAILED', `bundle ${given}: ${tsconfig}: cannot read its "extends" (${found.slice(0, 200)}); write it as a string or an array of strings`);
  }
  for (const target of [targets].flat()) {
    if (typeof target !== 'string') continue;
    const file = await extendedFile(target, dirname(tsconfig));
    // One esbuild cannot find either is its own error to report.
    if (file === undefined) continue;
    const checked = await checkRead(file, uid, given);
    if (seen.has(checked)) continue;
    if (seen.size >= MAX_EXTENDS_DEPTH) throw new GatehouseError('BUNDLE_FAILED', `bundle ${given}: ${tsconfig} extends more than ${MAX_EXTENDS_DEPTH} files`);
    seen.add(checked);
    await checkExtended(checked, uid, given, seen);
  }
}

/** Where a tsconfig "extends" target is, as TypeScript finds it: a path beside `fromDir`, or in a node_modules above it. */
async function extendedFile(target: string, fromDir: string): Promise<string | undefined> {
  const firstFile = async (candidates: string[]): Promise<string | undefined> => {
    for (const candidate of candidates) if ((await onFileIfAny(candidate, lstat(candidate)))?.isDirectory() === false) return candidate;
    return undefined;
  };
  if (target.startsWith('.') || isAbsolute(target)) {
    const path = resolve(fromDir, target);
    return firstFile([path, `${path}.json`]);
  }
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const base = join(dir, 'node_modules', target);
    const file = await firstFile([base, `${base}.json`, join(base, 'tsconfig.json')]);
    if (file !== undefined) return file;
    if (dirname(dir) === dir) return undefined;
  }
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
    let text: string | undefined;
    try {
      // Bounded, regular files only: a FIFO planted above --out would hang the build, /dev/zero through a link exhaust memory.
      text = (await readLimited(file, MAX_PACKAGE_JSON_BYTES, 'BUNDLE_FAILED')).toString('utf8');
    } catch (error) {
      if (!isGatehouseError(error, 'FILE_NOT_FOUND')) return { type: 'unreadable', why: error instanceof Error ? error.message : String(error) };
    }
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
 * Checks, before esbuild resolves a bare import (`foo`, `@scope/foo/x`), the package Node's lookup picks:
 * the first `node_modules/NAME` walking up from the importer. Its package.json says which file the import
 * means ("main", "exports") and esbuild's resolver reads it before any load hook: another user's, in a
 * shared node_modules above the project, could point the import at any file we would bundle, or hang the
 * build as a FIFO. Each package is checked once.
 */
function checkedBeforeResolve(uid: number, entry: string, refusals: GatehouseError[]): Plugin {
  const checked = new Map<string, Promise<void>>();
  const checkPackage = async (candidate: string): Promise<void> => {
    const packageJson = join(candidate, 'package.json');
    // checkRead also refuses the package's directory, and any above it, that another user owns or can write; a
    // package without one resolves to its index file, which the load check refuses in such a directory.
    if ((await onFileIfAny(packageJson, lstat(packageJson))) !== undefined) await checkRead(packageJson, uid, entry);
  };
  return {
    name: 'gatehouse-checked-before-resolve',
    setup(pluginBuild) {
      pluginBuild.onResolve({ filter: /^[^./]/, namespace: 'file' }, async (args) => {
        if (isBuiltin(args.path) || isAbsolute(args.path)) return undefined;
        const parts = args.path.split('/');
        const name = (args.path.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/');
        await kept(refusals, async () => {
          for (let dir = args.resolveDir; ; dir = dirname(dir)) {
            const candidate = join(dir, 'node_modules', name);
            if ((await onFileIfAny(candidate, lstat(candidate))) !== undefined) {
              let check = checked.get(candidate);
              if (check === undefined) checked.set(candidate, (check = checkPackage(candidate)));
              return check;
            }
            if (dirname(dir) === dir) return;
          }
        });
        // Passed: esbuild resolves it as it would have.
        return undefined;
      });
    },
  };
}

/**
 * Checks each module as {@link checkRead} does before esbuild loads it, with the package.json files above it
 * (each directory once, in `checked`): after the build would be too late, as an import naming a FIFO hung
 * esbuild, and one naming /dev/zero grew it until it ran out of memory.
 */
function checkedBeforeLoad(uid: number, entry: string, refusals: GatehouseError[], checked: Set<string>): Plugin {
  return {
    name: 'gatehouse-checked-before-load',
    setup(pluginBuild) {
      pluginBuild.onLoad({ filter: /.*/, namespace: 'file' }, async (args) => {
        await kept(refusals, async () => checkPackageJsonsAbove(await checkRead(args.path, uid, entry), uid, entry, checked));
        // Passed: esbuild reads and loads it as it would have.
        return undefined;
      });
    },
  };
}

/** Runs a check inside an esbuild hook, keeping its refusal in `refusals`: esbuild passes it on as text only. */
async function kept(refusals: GatehouseError[], check: () => Promise<void>): Promise<void> {
  try {
    await check();
  } catch (error) {
    if (isGatehouseError(error)) refusals.push(error);
    throw error;
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

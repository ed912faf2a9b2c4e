import { build, type BuildFailure, type Message } from 'esbuild';
import { resolve } from 'node:path';
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
}

/**
 * Makes a single-file plugin: the entry and everything it imports (gatehouse-plugins/plugin, grpc-js, its
 * own modules) bundled by esbuild into one ESM file for Node 20, so that the manifest lists one file and the
 * plugin starts without resolving thousands of modules. `.proto` files imported from code are embedded as
 * text, so a codec can be built without reading a data file at run time.
 */
export async function bundlePlugin(options: BundleOptions): Promise<BundleResult> {
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
  return { out: options.out, bytes: output.contents.byteLength, inputs: Object.keys(result.metafile.inputs).sort() };
}

function describe(message: Message): string {
  const where = message.location ? `${message.location.file}:${message.location.line}:${message.location.column}: ` : '';
  return `${where}${message.text}`;
}

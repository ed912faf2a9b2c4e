// Builds a signed release of engines: each TypeScript engine bundled by esbuild into one file (so that
// the signed, sealed bytes are everything that runs besides the node binary), listed in a manifest with
// the system node as its interpreter, and the manifest signed with the release key.
import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { formatManifest, MANIFEST_SCHEMA, sha256File, signManifest, type ManifestPlugin, type MinisignSecretKey } from 'gatehouse-plugins';
import { selectEntry } from './mounts.js';

export interface EngineBuild {
  /** An engine under engines/ (kv, transit), or any name with `entryPoint`. */
  engine: string;
  version: string;
  /** The compiled module to bundle (default: engines/<engine>/main.js). */
  entryPoint?: string;
  /** An engine that is already an executable (a Go go-plugin engine, say): copied as is, no interpreter. */
  executable?: string;
}

export interface ReleaseOptions {
  outDir: string;
  engines: readonly EngineBuild[];
  secretKey: MinisignSecretKey;
  /** Further signers, for a host that requires K of N keys: each signature goes in manifest.json.<KEYID>.minisig. */
  cosigners?: readonly MinisignSecretKey[];
  /** The manifest version: only ever goes up (hosts refuse a lower one). */
  manifestVersion: number;
  expires?: Date;
  /** The interpreter the entries name (default: this node). Unpinned: trusted as part of the system. */
  interpreter?: string;
}

const ENGINES_DIR = fileURLToPath(new URL('./engines/', import.meta.url));

export async function buildRelease(options: ReleaseOptions): Promise<{ manifestPath: string; files: Record<string, string> }> {
  await mkdir(options.outDir, { recursive: true, mode: 0o755 });
  const plugins: ManifestPlugin[] = [];
  const files: Record<string, string> = {};
  for (const { engine, version, entryPoint, executable } of options.engines) {
    const name = selectEntry(engine, version);
    if (executable !== undefined) {
      const outfile = join(options.outDir, name);
      await copyFile(executable, outfile);
      await chmod(outfile, 0o755);
      plugins.push({ name, path: name, ...(await sha256File(outfile)) });
      files[name] = outfile;
      continue;
    }
    const file = `${name}.mjs`;
    const outfile = join(options.outDir, file);
    await build({
      entryPoints: [entryPoint ?? join(ENGINES_DIR, engine, 'main.js')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile,
      // grpc-js calls require(); an ES module bundle gets one made for it.
      banner: { js: "import { createRequire as __engineRequire } from 'node:module'; const require = __engineRequire(import.meta.url);" },
      define: { ENGINE_VERSION: JSON.stringify(version) },
      minify: true,
      legalComments: 'none',
      logLevel: 'error',
    });
    const digest = await sha256File(outfile);
    plugins.push({ name, path: file, ...digest, interpreter: { path: options.interpreter ?? process.execPath } });
    files[name] = outfile;
  }
  const expires = options.expires ?? new Date(Date.now() + 30 * 86_400_000);
  const text = formatManifest({ schema: MANIFEST_SCHEMA, version: options.manifestVersion, expires: expires.toISOString(), plugins });
  const manifestPath = join(options.outDir, 'manifest.json');
  await writeFile(manifestPath, text, { mode: 0o644 });
  await writeFile(`${manifestPath}.minisig`, signManifest(Buffer.from(text), options.secretKey), { mode: 0o644 });
  for (const key of options.cosigners ?? []) {
    await writeFile(`${manifestPath}.${key.keyId}.minisig`, signManifest(Buffer.from(text), key), { mode: 0o644 });
  }
  return { manifestPath, files };
}

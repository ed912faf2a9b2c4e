import { chmod, chown, mkdir, realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { GatehouseError } from '../errors.js';
import { sealPlugin, shareDirectory, type SealablePlugin, type SealedPlugin, type SealOptions } from './seal.js';

/**
 * Seals a plugin; for a package entry (one with `package`), the whole listed tree is copied with its layout
 * (so `import.meta.url`-relative data files are found as in place) and Node is started with a preloaded
 * hook that refuses to resolve any module outside the sealed package: ESM through `module.register`, and
 * CommonJS `require` through the resolver it calls. Other entries are sealed exactly as {@link sealPlugin}.
 */
export async function sealPluginPackage(entry: SealablePlugin, pluginDir: string, options: SealOptions = {}): Promise<SealedPlugin> {
  const sealed = await sealPlugin(entry, pluginDir, options);
  if (entry.package === undefined) return sealed;
  try {
    // The sealed entry keeps its place in the package, so the package's copy is the entry's path minus its tail.
    const tail = entry.path.slice(entry.package.length);
    const root = await realpath(sealed.path.slice(0, sealed.path.length - tail.length));
    const register = await writeContainmentHook(sealed.dir, root, options.group);
    return { ...sealed, args: ['--import', pathToFileURL(register).href, ...sealed.args] };
  } catch (error) {
    await sealed.dispose();
    throw error instanceof GatehouseError ? error : new GatehouseError('SEAL_FAILED', `${entry.name}: cannot confine its package: ${String(error)}`, { cause: error });
  }
}

/**
 * Writes the two hook modules (read-only, new files only) next to the sealed tree; returns the one to preload.
 * With `group` (a plugin run as another user), that group may read them, as it reads the rest of the seal.
 */
async function writeContainmentHook(sealDir: string, root: string, group: number | undefined): Promise<string> {
  const dir = join(sealDir, 'gatehouse-containment');
  await mkdir(dir, { mode: 0o700 });
  await shareDirectory(dir, group);
  const prefix = JSON.stringify(`${root}/`);
  const register = join(dir, 'register.mjs');
  for (const [file, text] of [[join(dir, 'hooks.mjs'), hooksModule(prefix)], [register, registerModule(prefix)]] as const) {
    // 'wx': a file already at that name (which nobody else can create in our directory) is never reused.
    await writeFile(file, text, { flag: 'wx', mode: 0o400 });
    if (group !== undefined) {
      await chown(file, -1, group);
      await chmod(file, 0o440);
    }
  }
  return register;
}

function hooksModule(prefix: string): string {
  return `// gatehouse: ESM resolution confined to the sealed plugin package.
import { fileURLToPath } from 'node:url';
const ROOT = ${prefix};
export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  if (resolved.url.startsWith('node:')) return resolved;
  // A module found above the sealed tree (a node_modules of the seal root's parents) was never signed.
  if (resolved.url.startsWith('file:') && fileURLToPath(resolved.url).startsWith(ROOT)) return resolved;
  const error = new Error('gatehouse: ' + specifier + ' resolves to ' + resolved.url + ', outside the sealed plugin package ' + ROOT);
  error.code = 'ERR_MODULE_NOT_FOUND';
  throw error;
}
`;
}

function registerModule(prefix: string): string {
  return `// gatehouse: preloaded with --import; confines ESM and CommonJS resolution to the sealed plugin package.
import Module, { register } from 'node:module';
const ROOT = ${prefix};
register(new URL('./hooks.mjs', import.meta.url));
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  const file = resolveFilename.call(this, request, ...rest);
  // require() climbs to every node_modules above the sealed tree; those files were never signed.
  if (Module.isBuiltin(file) || file.startsWith(ROOT)) return file;
  const error = new Error('gatehouse: ' + request + ' resolves to ' + file + ', outside the sealed plugin package ' + ROOT);
  error.code = 'MODULE_NOT_FOUND';
  throw error;
};
`;
}

import { chmod, chown, mkdir, realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { GatehouseError } from '../errors.js';
import { sealPlugin, shareDirectory, type SealablePlugin, type SealedPlugin, type SealOptions } from './seal.js';

/**
 * Seals a plugin; for a package entry (one with `package`), the whole listed tree is copied with its layout
 * (so `import.meta.url`-relative data files are found as in place) and Node is started with a preloaded
 * hook that refuses to resolve any module outside the sealed package: ESM through `module.registerHooks` (in
 * the plugin's thread) or, on a Node without it, `module.register`, CommonJS `require` through the resolver
 * it calls, and worker threads and forked Node.js processes through a `Worker` and a `fork` that keep the
 * hook. Other entries are sealed exactly as {@link sealPlugin}.
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
  for (const [file, text] of [[join(dir, 'hooks.mjs'), hooksModule(prefix)], [register, registerModule()]] as const) {
    // 'wx': a file already at that name (which nobody else can create in our directory) is never reused.
    await writeFile(file, text, { flag: 'wx', mode: 0o400 });
    if (group !== undefined) {
      await chown(file, -1, group);
      await chmod(file, 0o440);
    }
  }
  return register;
}

/**
 * The containment, whole: one rule (`confine`), applied to ESM `import` by a resolve hook and to CommonJS
 * `require` by Node's CommonJS resolver, and `install`, which register.mjs calls in the plugin's Node
 * before its first module. Which ESM hook is used is decided there, by that Node, not by the host's:
 * `module.registerHooks` (Node >= 22.15 and 23.5) runs in the plugin's own thread; `module.register`
 * (older Nodes) starts a loader thread, 35-50 ms of CPU per start (docs/benchmarks.md), and loads this
 * module again there for `resolve`. registerHooks' hook also sees every `require` (after the resolver has
 * refused what is outside), but not `require.resolve` (Node 22.23 here; nodejs/node#62028 changes that),
 * so the resolver keeps confining CommonJS, alike on every version.
 */
function hooksModule(prefix: string): string {
  return `// gatehouse: module resolution confined to the sealed plugin package.
import { fileURLToPath, pathToFileURL } from 'node:url';
const ROOT = ${prefix};

/** Throws (with \`code\`) unless \`url\` is a builtin or a file inside the sealed package. */
export function confine(specifier, url, code) {
  // A module found above the sealed tree (a node_modules of the seal root's parents) was never signed.
  if (url.startsWith('node:') || (url.startsWith('file:') && fileURLToPath(url).startsWith(ROOT))) return;
  const error = new Error('gatehouse: ' + specifier + ' resolves to ' + url + ', outside the sealed plugin package ' + ROOT);
  error.code = code;
  throw error;
}

/** The ESM hook for module.register (in its loader thread). */
export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  confine(specifier, resolved.url, 'ERR_MODULE_NOT_FOUND');
  return resolved;
}

/** The same hook for module.registerHooks: synchronous, in the plugin's thread. */
export function resolveSync(specifier, context, nextResolve) {
  const resolved = nextResolve(specifier, context);
  confine(specifier, resolved.url, 'ERR_MODULE_NOT_FOUND');
  return resolved;
}

/**
 * Confines this thread's CommonJS resolution and its ESM resolution, the latter in-thread where Node can,
 * and, given node:worker_threads' and node:child_process' exports, the threads and Node.js processes it starts.
 */
export function install(Module, hooksURL, starters) {
  const resolveFilename = Module._resolveFilename;
  Module._resolveFilename = function (request, ...rest) {
    const file = resolveFilename.call(this, request, ...rest);
    // require() climbs to every node_modules above the sealed tree; those files were never signed.
    confine(request, Module.isBuiltin(file) ? 'node:' + file.replace(/^node:/, '') : pathToFileURL(file).href, 'MODULE_NOT_FOUND');
    return file;
  };
  // A loader thread costs every start 35-50 ms of CPU; the in-thread hooks, 0-4 ms (docs/benchmarks.md).
  if (typeof Module.registerHooks === 'function') Module.registerHooks({ resolve: resolveSync });
  else Module.register(hooksURL);
  if (starters !== undefined) {
    // Loading worker_threads and child_process for this costs a start about 2 ms (measured on Node 20):
    // a thread or process started without the preload would resolve modules that were never signed.
    // A copy taken now: a plugin that empties its own process.execArgv must not start children without the preload.
    const preload = preloading(new URL('./register.mjs', hooksURL).href, [...process.execArgv]);
    starters.workerThreads.Worker = confinedWorker(starters.workerThreads.Worker, preload);
    starters.childProcess.fork = confinedFork(starters.childProcess.fork, preload);
    // So that \`import { Worker } from 'node:worker_threads'\` (and fork) in the plugin get them too.
    Module.syncBuiltinESMExports();
  }
}

/** Options that load a module before the containment's --import runs: Node runs every --require (and a loader) first. */
const EARLY_LOADS = /^(?:-r|--require|--loader|--experimental-loader)(?:=|$)/;

/** A start refused: what it asked would load code before the containment, or outside it. */
function confinedError(message) {
  const error = new Error('gatehouse: ' + message);
  error.code = 'ERR_GATEHOUSE_CONFINED';
  return error;
}

/**
 * An execArgv that preloads the containment: the one given (\`inherited\`, this process's as it was at start, when
 * none is), if it does, else the one given with it put first. \`nodeOptions\` is the NODE_OPTIONS the new process
 * will read. Either loading a module before the containment runs is refused.
 */
export function preloading(registerHref, inherited) {
  const preloads = (execArgv) => execArgv.some((arg, i) => (arg === registerHref && execArgv[i - 1] === '--import') || arg === '--import=' + registerHref);
  return (given, nodeOptions) => {
    const execArgv = given ?? inherited;
    // Attack: \`--require dotenv/config\` (an innocent habit) runs before the --import that confines: a bare name
    // resolves from the working directory, where another user may have planted node_modules. NODE_OPTIONS is read
    // even before the command line, so a preload there (--import included) runs first too.
    const early = execArgv.find((arg) => EARLY_LOADS.test(arg)) ?? (nodeOptions ?? '').split(/\\s+/).find((arg) => EARLY_LOADS.test(arg) || /^--import(?:=|$)/.test(arg));
    if (early !== undefined) {
      throw confinedError('a sealed plugin package cannot start a thread or process with ' + early + ': it would load code before the containment; import the module from the code of the package instead');
    }
    return preloads(execArgv) ? execArgv : ['--import', registerHref, ...execArgv];
  };
}

/**
 * Worker, starting each thread with the containment preloaded: a worker loads modules too, and one given
 * its own execArgv (\`[]\`, say) would start without the preload and resolve them unconfined. An eval
 * worker never runs a preload (Node 20 and 22), so it is refused rather than left unconfined.
 */
export function confinedWorker(Worker, preload) {
  return class ConfinedWorker extends Worker {
    constructor(filename, options = {}) {
      if (options.eval) {
        throw confinedError('a sealed plugin package cannot start an eval worker: nothing it loads would be confined to the package; start the worker from a file of the package');
      }
      // A worker reads no NODE_OPTIONS: it runs in this process.
      const execArgv = preload(options.execArgv, undefined);
      super(filename, execArgv === options.execArgv ? options : { ...options, execArgv });
    }
  };
}

/** child_process.fork, the same for a child Node.js process: one given its own execArgv keeps the preload. */
export function confinedFork(fork, preload) {
  return function confinedFork(modulePath, args, options) {
    // fork(modulePath[, args][, options]), as Node reads it: an object in place of args is the options.
    if (args != null && !Array.isArray(args)) {
      options = args;
      args = undefined;
    }
    const execArgv = preload(options?.execArgv, (options?.env ?? process.env).NODE_OPTIONS);
    return fork.call(this, modulePath, args ?? [], execArgv === options?.execArgv ? options : { ...options, execArgv });
  };
}
`;
}

function registerModule(): string {
  return `// gatehouse: preloaded with --import; confines ESM and CommonJS resolution, and the threads and Node.js processes
// the plugin starts, to the sealed plugin package.
import Module, { createRequire } from 'node:module';
import { install } from './hooks.mjs';
const builtin = createRequire(import.meta.url);
install(Module, new URL('./hooks.mjs', import.meta.url), { workerThreads: builtin('node:worker_threads'), childProcess: builtin('node:child_process') });
`;
}

// The server home: config.json (no secret in it), the root token's digest, the audit HMAC key (0600),
// the store and the audit log. Everything is 0700/0600. Engines are sealed elsewhere: under the library's
// seal root, whose every parent directory is the host's (a home under /tmp would not do for that).
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { defaultSealRoot } from 'gatehouse-plugins';
import { newRootToken } from './auth.js';
import { ServerError } from './errors.js';

export interface ServerConfig {
  /** Loopback only; 0 picks a free port. */
  port: number;
  /**
   * The signed release of the engines: its manifest (signatures beside it), the trusted public keys, and how many
   * of them must have signed it (K of N; 1 when missing, as in a config written before it existed).
   */
  release: { manifest: string; trustedKeysDir: string; threshold?: number };
  /** SHA-256 of the root token; the token itself is shown once, at init. */
  rootTokenSha256: string;
  /** 'auto' sandboxes engines when bubblewrap is installed (and says so when it is not). */
  sandbox: 'auto' | 'required' | 'off';
  /** Where engines are sealed: this server's own directory, under a root no other user can write. */
  sealDir: string;
  /** Run engines as this user and group (a host running as root should set it). */
  pluginUser?: { uid: number; gid: number };
  limits: Limits;
}

export interface Limits {
  maxBodyBytes: number;
  callTimeoutMs: number;
  maxConcurrentCalls: number;
  idleTimeoutMs?: number;
  /** Open client connections at once; more are closed unanswered. */
  maxConnections: number;
  /** How long a connection may take to send a whole request header before the server closes it. */
  headersTimeoutMs: number;
  /** What one mount's engine may keep in the server's storage (keys and values together), and how many keys. */
  maxStorageBytesPerMount: number;
  maxStorageKeysPerMount: number;
}

/** What init writes, and what a config written before a limit existed gets for it. */
export const DEFAULT_LIMITS: Limits = { maxBodyBytes: 1024 * 1024, callTimeoutMs: 10_000, maxConcurrentCalls: 64, maxConnections: 256, headersTimeoutMs: 2_000, maxStorageBytesPerMount: 64 * 1024 * 1024, maxStorageKeysPerMount: 10_000 };

export const homePaths = (home: string) => ({
  config: join(home, 'config.json'),
  auditKey: join(home, 'audit-hmac.key'),
  audit: join(home, 'audit.jsonl'),
  store: join(home, 'data', 'store.log'),
  rollback: join(home, 'release-version'),
});

export interface InitOptions {
  home: string;
  release: ServerConfig['release'];
  port?: number;
  sandbox?: ServerConfig['sandbox'];
  pluginUser?: ServerConfig['pluginUser'];
  /** Default: a directory of this server's own under the library's default seal root. */
  sealDir?: string;
}

/** Creates a server home; returns the root token, which is stored nowhere. */
export async function initHome(options: InitOptions): Promise<{ rootToken: string }> {
  const threshold = options.release.threshold ?? 1;
  if (!Number.isSafeInteger(threshold) || threshold < 1) throw new ServerError(400, 'invalid_config', `threshold must be a positive integer, got ${JSON.stringify(threshold)}`);
  for (const path of [options.home, options.release.manifest, options.release.trustedKeysDir, ...(options.sealDir ? [options.sealDir] : [])]) {
    if (!isAbsolute(path)) throw new ServerError(400, 'invalid_config', `${path}: paths in the config must be absolute`);
  }
  const paths = homePaths(options.home);
  await mkdir(options.home, { recursive: true, mode: 0o700 });
  // recursive: the empty data directory of an init that failed part way must not block the next one.
  await mkdir(join(options.home, 'data'), { recursive: true, mode: 0o700 });
  const { token, sha256 } = newRootToken();
  const config: ServerConfig = {
    port: options.port ?? 8200,
    release: { ...options.release, threshold },
    rootTokenSha256: sha256,
    sandbox: options.sandbox ?? 'auto',
    sealDir: options.sealDir ?? join(defaultSealRoot(), 'secrets-server', randomUUID()),
    // A server run as root runs its engines as nobody unless told otherwise: an engine that escapes its
    // sandbox must not hold root's files and keys.
    ...(options.pluginUser ?? defaultPluginUser() ? { pluginUser: options.pluginUser ?? defaultPluginUser() } : {}),
    limits: DEFAULT_LIMITS,
  };
  await createWhole(paths.config, `${JSON.stringify(config, null, 2)}\n`);
  try {
    await createWhole(paths.auditKey, randomBytes(32));
  } catch (error) {
    // A config without its audit key would make every later init refuse the home.
    await rm(paths.config, { force: true });
    throw error;
  }
  return { rootToken: token };
}

/** Creates `file` (0600) holding `data`, fsynced, or leaves nothing: a torn file would pass for a home. */
async function createWhole(file: string, data: string | Uint8Array): Promise<void> {
  // 'wx': init never overwrites a home that exists (its token and keys would be lost).
  const handle = await open(file, 'wx', 0o600);
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await rm(file, { force: true });
    throw new ServerError(500, 'init_failed', `${file}: cannot be written (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { cause: error });
  }
}

/** nobody (65534), for a server running as root; none for a server that is already an unprivileged user. */
function defaultPluginUser(): ServerConfig['pluginUser'] {
  return process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined;
}

export async function loadConfig(home: string): Promise<ServerConfig> {
  const text = await readFile(homePaths(home).config, 'utf8').catch((cause: unknown) => {
    throw new ServerError(500, 'invalid_config', `${home}: no config.json; run init first`, { cause });
  });
  let config: ServerConfig;
  try {
    config = JSON.parse(text) as ServerConfig;
  } catch (cause) {
    throw new ServerError(500, 'invalid_config', `${home}/config.json is not valid JSON (${(cause as Error).message}); fix it, or run init in a new home`, { cause });
  }
  if (typeof config.rootTokenSha256 !== 'string' || !/^[0-9a-f]{64}$/.test(config.rootTokenSha256) || !config.release || !config.limits || typeof config.sealDir !== 'string' || !isAbsolute(config.sealDir)) {
    throw new ServerError(500, 'invalid_config', `${home}/config.json: missing rootTokenSha256, release, limits or an absolute sealDir`);
  }
  const threshold = config.release.threshold ?? 1;
  // A threshold that is not a count (a string, 0, a fraction) must not stand for "any one key" unnoticed.
  if (!Number.isSafeInteger(threshold) || threshold < 1) {
    throw new ServerError(500, 'invalid_config', `${home}/config.json: release.threshold must be a positive integer, got ${JSON.stringify(threshold)} (how many of the trusted keys must sign a release)`);
  }
  return { ...config, release: { ...config.release, threshold }, limits: checkedLimits(home, config.limits) };
}

const KNOWN_LIMITS = [...Object.keys(DEFAULT_LIMITS), 'idleTimeoutMs'];
/** The longest timer Node keeps (2^31 - 1 ms); a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long a whole request may take (server.ts's requestTimeout). */
export const REQUEST_TIMEOUT_MS = 60_000;

/** The config's limits over the defaults; a limit that is no positive integer, or misspelt, stops the start. */
function checkedLimits(home: string, given: Partial<Limits>): Limits {
  for (const name of Object.keys(given)) {
    // A misspelt limit would leave the default in force while the operator believes theirs is.
    if (!KNOWN_LIMITS.includes(name)) {
      throw new ServerError(500, 'invalid_config', `${home}/config.json: limits.${name} is not a limit this server knows (known: ${KNOWN_LIMITS.join(', ')})`);
    }
  }
  const limits: Limits = { ...DEFAULT_LIMITS, ...given };
  for (const [name, value] of Object.entries(limits)) {
    // A string, 0 or a fraction reaching node:http's timeouts or the caps would switch a bound off or fail late; a
    // timer past 2^31 - 1 ms fires at once (an idleTimeoutMs of 3e9 retired an engine after every call).
    const max = name.endsWith('Ms') ? MAX_TIMER_MS : Number.MAX_SAFE_INTEGER;
    if (!Number.isSafeInteger(value) || (value as number) <= 0 || (value as number) > max) {
      throw new ServerError(500, 'invalid_config', `${home}/config.json: limits.${name} must be a positive integer${max === MAX_TIMER_MS ? ` of at most ${MAX_TIMER_MS} (ms)` : ''}, got ${JSON.stringify(value)}`);
    }
  }
  // node:http refuses a header deadline past the whole request's: said here, with the setting's name.
  if (limits.headersTimeoutMs > REQUEST_TIMEOUT_MS) {
    throw new ServerError(500, 'invalid_config', `${home}/config.json: limits.headersTimeoutMs must be at most ${REQUEST_TIMEOUT_MS}, the time a whole request may take`);
  }
  return limits;
}

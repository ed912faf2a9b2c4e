// The mount table: each mount is a supervised engine plugin, verified against the signed release at
// mount and at every start, with a storage view of its own served to it over the broker.
import type * as grpc from '@grpc/grpc-js';
import {
  isGatehouseError,
  launchVerified,
  manifestExpiryWarning,
  supervise,
  type AuditLog,
  type LaunchVerification,
  type Logger,
  type MinisignPublicKey,
  type PluginSupervisor,
  type RollbackState,
  type SandboxOptions,
  type SupervisorEvent,
} from 'gatehouse-plugins';
import { ServerError } from './errors.js';
import { loadEngineProtocol, ENGINE_COOKIE, STORAGE_BROKER_ID, type StorageService } from './protocol.js';
import type { LogStore } from './store.js';

const { engine, storage } = loadEngineProtocol();

const MOUNT_PATH = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const PLUGIN_NAME = /^[a-z][a-z0-9-]{0,31}$/;
const VERSION = /^\d{1,6}\.\d{1,6}\.\d{1,6}$/;
/** Where the mount table itself is kept in the store (outside every mount's prefix). */
const MOUNT_TABLE_KEY = 'sys/mounts';
const RESERVED = new Set(['sys']);

export interface MountSpec {
  path: string;
  plugin: string;
  version: string;
}

export interface MountInfo extends MountSpec {
  entry: string;
  state: string;
  pid: number | undefined;
  restarts: number;
  /** What the last start verified: the sealed engine's digest and the keys that signed the release. */
  sha256: string | undefined;
  keyIds: readonly string[];
  /** When the release's manifest stops being accepted: no start of the engine after it, restarts included. */
  manifestExpires: string | undefined;
  /** Said while the engine runs, not only at its start: its release expires within a week, or has expired. */
  warnings: string[];
  lastError: { code: string; message: string } | undefined;
}

/**
 * The manifest entry that serves `plugin` at `version`. The one place a version is chosen: when
 * manifests carry semver versions and ranges, this becomes a range match.
 */
export function selectEntry(plugin: unknown, version: unknown): string {
  if (typeof plugin !== 'string' || !PLUGIN_NAME.test(plugin)) throw new ServerError(400, 'invalid_request', 'plugin must be a lower-case engine name such as "kv"');
  if (typeof version !== 'string' || !VERSION.test(version)) throw new ServerError(400, 'invalid_request', 'version must be MAJOR.MINOR.PATCH, such as "1.0.0"');
  return `${plugin}-${version}`;
}

export interface MountsOptions {
  manifestPath: string;
  trustedKeys: readonly MinisignPublicKey[];
  /** How many distinct trusted keys must have signed the release (K of N). */
  threshold: number;
  rollback: RollbackState;
  store: LogStore;
  audit: AuditLog;
  logger: Logger;
  sealDir: string;
  sandbox: SandboxOptions | false;
  pluginUser: { uid: number; gid: number } | undefined;
  callTimeoutMs: number;
  maxConcurrentCalls: number;
  idleTimeoutMs: number | undefined;
  /** What each mount may keep in the store: bytes (keys and values) and keys. */
  quota: Quota;
  onEvent: (mount: string, event: SupervisorEvent) => void;
}

export interface Quota {
  bytes: number;
  keys: number;
}

interface Mount {
  spec: MountSpec;
  entry: string;
  supervisor: PluginSupervisor;
  verified: Pick<LaunchVerification, 'sha256' | 'keyIds' | 'manifestExpires' | 'manifestVersion'> | undefined;
  /** Every storage view of this mount (an old and a new engine during a reload) writes through this one. */
  storage: MountStorage;
}

export class Mounts {
  private readonly mounts = new Map<string, Mount>();
  /** Mount and unmount one at a time, so the persisted table always matches the live one. */
  private changing: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: MountsOptions) {}

  /** Brings back the mounts of the last run; each engine is verified when it first starts. */
  async restore(): Promise<void> {
    const saved = this.options.store.get(MOUNT_TABLE_KEY);
    if (!saved) return;
    for (const spec of JSON.parse(saved.toString('utf8')) as MountSpec[]) this.mounts.set(spec.path, this.create(spec, selectEntry(spec.plugin, spec.version)));
  }

  /** Mounts an engine: verified and started now, so a refused engine is refused here, with the reason. */
  mount(path: string, plugin: unknown, version: unknown): Promise<MountInfo> {
    return this.serialize(async () => {
      checkMountPath(path);
      if (this.mounts.has(path)) throw new ServerError(400, 'mount_exists', `${path}/ is already mounted; unmount it or reload it`);
      const spec = { path, plugin: String(plugin), version: String(version) };
      const mount = this.create(spec, selectEntry(plugin, version));
      try {
        await mount.supervisor.call(() => Promise.resolve());
      } catch (error) {
        await mount.supervisor.stop();
        throw refusal(error, `${spec.plugin} ${spec.version}`);
      }
      this.mounts.set(path, mount);
      await this.persist();
      return this.info(mount);
    });
  }

  unmount(path: string): Promise<void> {
    return this.serialize(async () => {
      const mount = this.get(path);
      this.mounts.delete(path);
      await this.persist();
      await mount.supervisor.stop();
      // As Vault does: an unmounted engine's data goes with it, so a later mount at this path starts empty.
      const { store } = this.options;
      await Promise.all(store.list(mountPrefix(path)).map((key) => store.delete(key)));
    });
  }

  /** Switches a mount to another version (or the same one, re-verified) without failing requests. */
  reload(path: string, version: unknown): Promise<MountInfo> {
    return this.serialize(async () => {
      const mount = this.get(path);
      const nextVersion = version === undefined ? mount.spec.version : version;
      const entry = selectEntry(mount.spec.plugin, nextVersion);
      try {
        await mount.supervisor.reload(this.starter(mount, entry));
      } catch (error) {
        throw refusal(error, `${mount.spec.plugin} ${String(nextVersion)}`);
      }
      mount.entry = entry;
      mount.spec = { ...mount.spec, version: String(nextVersion) };
      await this.persist();
      return this.info(mount);
    });
  }

  /** One request below a mount, handed to its engine. */
  async handle(path: string, operation: string, subpath: string, body: Buffer): Promise<{ status: number; body: Buffer }> {
    const mount = this.get(path);
    try {
      return await mount.supervisor.call((plugin, callOptions) =>
        plugin.client(engine).Handle({ operation, path: subpath, body, storage_id: STORAGE_BROKER_ID }, callOptions),
      );
    } catch (error) {
      // The library's way back from down is reload(); the operator's is this route, which the reply names.
      if (isGatehouseError(error, 'PLUGIN_DOWN')) throw new ServerError(503, 'plugin_down', `${error.message}. ${reloadAdvice(path)}`, { cause: error });
      throw error;
    }
  }

  /**
   * For health, which monitoring polls without a token: when the earliest release a mount was verified against
   * expires, and whether that is within the week in which the mounts warn. Times only, no mount names.
   */
  releaseExpiry(): { expires: string | undefined; expiring: boolean } {
    const verified = [...this.mounts.values()].filter((mount) => mount.verified !== undefined);
    const earliest = verified.map((mount) => mount.verified?.manifestExpires as string).sort((a, b) => Date.parse(a) - Date.parse(b))[0];
    return { expires: earliest, expiring: verified.some((mount) => this.expiryWarning(mount).length > 0) };
  }

  private expiryWarning(mount: Mount): string[] {
    if (mount.verified === undefined) return [];
    const warning = manifestExpiryWarning(mount.entry, mount.verified);
    // After a newer release is installed the running engine still names the one it was verified against: a reload moves it.
    return warning === undefined ? [] : [`${warning}; once a newer release is installed, POST /v1/sys/plugins/reload/${mount.spec.path} moves this mount to it`];
  }

  list(): MountInfo[] {
    return [...this.mounts.values()].map((mount) => this.info(mount));
  }

  has(path: string): boolean {
    return this.mounts.has(path);
  }

  /** Refuses (404 no_such_mount) a path nothing is mounted at: the server says so before reading a body for it. */
  check(path: string): void {
    this.get(path);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.mounts.values()].map((mount) => mount.supervisor.stop()));
  }

  private get(path: string): Mount {
    const mount = this.mounts.get(path);
    if (!mount) throw new ServerError(404, 'no_such_mount', `nothing is mounted at ${path}/; POST /v1/sys/mounts/${path} mounts an engine`);
    return mount;
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const next = this.changing.then(work, work);
    this.changing = next.catch(() => {});
    return next;
  }

  private async persist(): Promise<void> {
    const table = [...this.mounts.values()].map((mount) => mount.spec);
    await this.options.store.put(MOUNT_TABLE_KEY, Buffer.from(JSON.stringify(table)));
  }

  private info(mount: Mount): MountInfo {
    const status = mount.supervisor.status();
    return {
      ...mount.spec,
      entry: mount.entry,
      state: status.state,
      pid: status.pid,
      restarts: status.restarts,
      sha256: mount.verified?.sha256,
      keyIds: mount.verified?.keyIds ?? [],
      manifestExpires: mount.verified?.manifestExpires,
      warnings: this.expiryWarning(mount),
      lastError: status.lastError,
    };
  }

  private create(spec: MountSpec, entry: string): Mount {
    const mount: Mount = { spec, entry, verified: undefined, storage: new MountStorage(this.options.store, spec.path, this.options.quota) } as Mount;
    mount.supervisor = supervise({
      // Without the version: the name is fixed for the mount's life, and a reload changes the version.
      name: `${spec.path}/ (${spec.plugin})`,
      start: this.starter(mount, entry),
      callTimeoutMs: this.options.callTimeoutMs,
      maxConcurrentCalls: this.options.maxConcurrentCalls,
      ...(this.options.idleTimeoutMs !== undefined ? { idleTimeoutMs: this.options.idleTimeoutMs } : {}),
      audit: this.options.audit,
      logger: this.options.logger,
    });
    mount.supervisor.onEvent((event) => this.options.onEvent(spec.path, event));
    return mount;
  }

  /** Verifies the entry against the signed release, runs its sealed copy isolated, and serves it storage. */
  private starter(mount: Mount, entry: string) {
    return async () => {
      const { audit, sandbox, pluginUser } = this.options;
      const plugin = await launchVerified({
        manifestPath: this.options.manifestPath,
        plugin: entry,
        // K of N at every start, restarts included: one stolen release key must not be enough to run code here.
        policy: { trustedKeys: this.options.trustedKeys, threshold: this.options.threshold, state: this.options.rollback },
        seal: { parentDir: this.options.sealDir },
        cookie: ENGINE_COOKIE,
        // Nothing of the server's environment (tokens, paths) reaches an engine.
        env: {},
        audit,
        logger: this.options.logger,
        ...(sandbox ? { sandbox } : {}),
        // As another user, the engine reaches the storage the server brokers to it through its group only.
        ...(pluginUser ? { user: pluginUser.uid, group: pluginUser.gid, unixSocketGroup: pluginUser.gid } : {}),
      });
      try {
        await plugin.broker.serve(STORAGE_BROKER_ID, [storageView(this.options.store, mount.storage)]);
      } catch (error) {
        await plugin.kill();
        throw error;
      }
      const { sha256, keyIds, manifestExpires, manifestVersion } = plugin.verification;
      mount.verified = { sha256, keyIds, manifestExpires, manifestVersion };
      return plugin;
    };
  }
}

/** What an operator does about a down mount, in the server's terms. */
export function reloadAdvice(path: string): string {
  return `Fix the cause, then POST /v1/sys/plugins/reload/${path} starts it again (GET /v1/sys/plugins shows its last error)`;
}

/** Where a mount's keys live in the store: no mount path is a prefix of another's, thanks to the slash. */
function mountPrefix(path: string): string {
  return `mounts/${path}/`;
}

/** The mount prefix of a store key, or '' for one outside every mount: each mount's revisions count on their own. */
export function mountScope(key: string): string {
  return /^mounts\/[^/]+\//.exec(key)?.[0] ?? '';
}

function checkMountPath(path: string): void {
  if (!MOUNT_PATH.test(path) || RESERVED.has(path)) {
    throw new ServerError(400, 'invalid_mount_path', `mount path ${JSON.stringify(path)}: use 1 to 64 of a-z 0-9 _ - (not "sys")`);
  }
}

/** A verification or start failure as the 400 a client sees, naming the gatehouse code and reason. */
function refusal(error: unknown, what: string): ServerError {
  if (error instanceof ServerError) return error;
  const code = isGatehouseError(error) ? error.code : 'UNEXPECTED';
  const message = error instanceof Error ? error.message : String(error);
  return new ServerError(400, 'plugin_refused', `${what} refused: ${code}: ${message}`, { cause: error });
}

/** One mount's writes to the store, held to its quota: puts still in flight count, so concurrent ones cannot overshoot it. */
class MountStorage {
  readonly prefix: string;
  private pending: Quota = { bytes: 0, keys: 0 };

  constructor(
    private readonly store: LogStore,
    private readonly path: string,
    private readonly quota: Quota,
  ) {
    this.prefix = mountPrefix(path);
  }

  /** Writes `value` (only if the key is still at `revision`, when given); false if it was not. */
  async put(key: string, value: Buffer, revision?: number): Promise<boolean> {
    // Storage flood: an engine, hostile or buggy, could otherwise fill the server's disk and memory.
    const old = this.store.get(key);
    const adds: Quota = { bytes: Buffer.byteLength(key) + value.length, keys: old === undefined ? 1 : 0 };
    const stored = this.store.usage(this.prefix);
    const used: Quota = { bytes: stored.bytes + this.pending.bytes, keys: stored.keys + this.pending.keys };
    const freed = old === undefined ? 0 : Buffer.byteLength(key) + old.length;
    if (used.keys + adds.keys > this.quota.keys || used.bytes - freed + adds.bytes > this.quota.bytes) {
      throw new ServerError(507, 'quota_exceeded', `mount ${this.path}/ is at its storage quota of ${this.quota.keys} keys and ${this.quota.bytes} bytes (it holds ${used.keys} keys and ${used.bytes} bytes, writes in flight included)`);
    }
    this.pending = { bytes: this.pending.bytes + adds.bytes, keys: this.pending.keys + adds.keys };
    try {
      return await this.store.compareAndPut(key, value, revision);
    } finally {
      this.pending = { bytes: this.pending.bytes - adds.bytes, keys: this.pending.keys - adds.keys };
    }
  }
}

/** gRPC status codes the storage service answers with. */
const GRPC_INVALID_ARGUMENT = 3;
const GRPC_RESOURCE_EXHAUSTED = 8;

/** The host's store as one mount sees it: every key is put under the mount's prefix, which it cannot leave. */
function storageView(store: LogStore, mount: MountStorage): { definition: StorageService; implementation: grpc.UntypedServiceImplementation } {
  type Unary<Req, Res> = grpc.handleUnaryCall<Req, Res>;
  const { prefix } = mount;
  const run = <Res>(callback: grpc.sendUnaryData<Res>, work: () => Promise<Res> | Res) => {
    Promise.resolve()
      .then(work)
      .then(
        (value) => callback(null, value),
        (error: unknown) => {
          // A full quota is RESOURCE_EXHAUSTED, which engines can tell from a bad request.
          const code = error instanceof ServerError && error.code === 'quota_exceeded' ? GRPC_RESOURCE_EXHAUSTED : GRPC_INVALID_ARGUMENT;
          callback({ code, details: error instanceof Error ? error.message : String(error) } as grpc.ServiceError);
        },
      );
  };
  // Keys are joined, never resolved as paths: "../other/x" is just a strange key inside this prefix.
  const key = (k: string) => prefix + k;
  const Get: Unary<{ key: string }, { found: boolean; value: Buffer; revision: number }> = (call, callback) =>
    run(callback, () => {
      const value = store.get(key(call.request.key));
      return { found: value !== undefined, value: value ?? Buffer.alloc(0), revision: store.revision(key(call.request.key)) };
    });
  const Put: Unary<{ key: string; value: Buffer }, Record<string, never>> = (call, callback) =>
    run(callback, async () => (await mount.put(key(call.request.key), call.request.value), {}));
  const CompareAndPut: Unary<{ key: string; value: Buffer; revision: number }, { written: boolean }> = (call, callback) =>
    run(callback, async () => ({ written: await mount.put(key(call.request.key), call.request.value, call.request.revision) }));
  const Delete: Unary<{ key: string }, Record<string, never>> = (call, callback) =>
    run(callback, async () => (await store.delete(key(call.request.key)), {}));
  const List: Unary<{ key: string }, { keys: string[] }> = (call, callback) =>
    run(callback, () => ({ keys: store.list(key(call.request.key)).map((k) => k.slice(prefix.length)) }));
  return { definition: storage, implementation: { Get, Put, CompareAndPut, Delete, List } };
}

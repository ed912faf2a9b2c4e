import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { AuditLog } from '../audit/index.js';
import { GatehouseError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { certificateFingerprint, generateEphemeralIdentity } from '../tls/certificate.js';
import { hostTls, type HostTls } from '../tls/pinning.js';
import { buildPluginEnv, validateCookie, type MagicCookie } from '../transport/env.js';
import { checkAnnouncedPort, parseHandshakeLine, type HandshakeLine } from '../transport/handshake.js';
import { MAX_TIMER_MS } from '../transport/grpc-call-protocol.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../transport/limits.js';
import { resolveGroup } from '../transport/socket-group.js';
import { connectPlugin, pinnedPluginCredentials, type PluginConnection, type PluginCredentials } from './connection.js';
import { HostSocketDir } from './host-socket-dir.js';
import { PluginSocketLink } from './plugin-socket.js';
import { connectMultiplexed, type MultiplexedConnection } from './multiplexed-connection.js';
import type { IsolationOptions } from './isolation.js';
import { trackPlugin, untrackPlugin, type LivePlugin } from './live-plugins.js';
import { stdoutToLogger } from './plugin-output.js';
import { Plugin } from './plugin.js';
import type { PluginStdio } from './plugin-stdio.js';
import { checkVersionedServices, OfferedServices, type CheckedVersions, type VersionedServices } from './versioned-services.js';
import { exitsWithin, PluginProcess, SIGKILL_WAIT_MS } from './plugin-process.js';
import { removeSocketDir } from './socket-dir.js';
import { explainStartFailure } from './start-failure.js';
import { recordRefusal } from './refusal.js';

/** `user`, `group`, `limits` and `sandbox` (IsolationOptions) separate the plugin further from the host. */
export interface LaunchOptions extends IsolationOptions {
  /** Absolute path of the plugin executable; run directly, never through a shell. */
  command: string;
  args?: readonly string[];
  /** Names the plugin in logs and errors (default: the command's file name). */
  name?: string;
  /** go-plugin's MagicCookieKey / MagicCookieValue, shared with the plugin. */
  cookie: MagicCookie;
  /** Application protocol versions the host speaks (default [1]). */
  protocolVersions?: readonly number[];
  /**
   * The services each protocol version offers (go-plugin's VersionedPlugins), instead of
   * protocolVersions: the plugin picks the highest version both speak, and `plugin.client()` accepts
   * only services of the version it picked.
   */
  versions?: VersionedServices;
  /**
   * The plugin's whole environment besides the contract variables. Unlike go-plugin, the host's own
   * environment is not passed on: secrets in it stay in the host.
   */
  env?: Readonly<Record<string, string>>;
  cwd?: string;
  /** pino-compatible; the plugin's stderr is logged here under its name. Silent by default. */
  logger?: Logger;
  /** Time from spawn to a healthy connection (default 10 s). */
  startTimeoutMs?: number;
  /** Wait after Shutdown, and again after SIGTERM, before the next step (default 2 s). */
  killGraceMs?: number;
  /**
   * Talk to the plugin without TLS. Anyone on this machine who can reach the socket can then call the
   * plugin or impersonate it, so it must be asked for by name. Refused with `unixSocketGroup`
   * (INVALID_OPTIONS): every member of the group could.
   */
  insecurePlaintext?: boolean;
  /** Receives the plugin's stdout lines after the handshake (default: logged at info). */
  onStdoutLine?: (line: string) => void;
  /**
   * 'inherit' hands the host's stdin (a terminal, say) to the plugin, as go-plugin does; by default the
   * plugin reads /dev/null, so it cannot consume input meant for the host.
   */
  stdin?: 'ignore' | 'inherit';
  /**
   * Writers for what the plugin writes to stdout and stderr after its handshake and forwards over
   * go-plugin's GRPCStdio (go-plugin's SyncStdout / SyncStderr). Without one, forwarded output is
   * handled as the pipe's: stdout lines as `onStdoutLine`, stderr lines logged.
   */
  stdio?: PluginStdio;
  /** Largest gRPC message sent or received, in bytes (default 16 MiB). */
  maxMessageBytes?: number;
  /**
   * The port range a plugin that listens on TCP picks from (PLUGIN_MIN_PORT / PLUGIN_MAX_PORT,
   * default 10000-25000); it may listen only on loopback.
   */
  minPort?: number;
  maxPort?: number;
  /**
   * PLUGIN_UNIX_SOCKET_GROUP (a gid or a group name): the plugin gives its sockets to this group,
   * group-writable, and so does the host for the sockets it serves through the broker, so that a
   * plugin running as another user in that group can reach them.
   */
  unixSocketGroup?: number | string;
  /**
   * Extra grpc-js channel options, passed through (to brokered connections too). With any set, every
   * call to the plugin goes through a grpc-js channel, so that each option applies to all of them;
   * without, they share one lean node:http2 connection (about half the host CPU per call), and
   * grpc-js connects only for `plugin.grpcClient()`.
   */
  channelOptions?: grpc.ChannelOptions;
  /**
   * Extra grpc-js server options for the services the host serves through the broker, passed through;
   * `grpc.max_concurrent_streams` is 100 per connection unless given here (MAX_PEER_CONCURRENT_STREAMS).
   */
  serverOptions?: grpc.ServerOptions;
  /**
   * go-plugin >= 1.6's multiplexed broker (GRPCBrokerMultiplex): brokered connections ride the plugin's
   * one socket as yamux streams instead of a socket each. The plugin must support it. Not with
   * `unixSocketGroup` (INVALID_OPTIONS): a member of the group could take the one connection.
   */
  multiplexBroker?: boolean;
  /** Aborting it before the plugin is connected kills the plugin and rejects with START_ABORTED. */
  signal?: AbortSignal;
  /** Records launch, handshake, connection, refusals, kill steps and exit in this tamper-evident log. */
  audit?: AuditLog;
}

const DEFAULT_START_TIMEOUT_MS = 10_000;
const DEFAULT_KILL_GRACE_MS = 2_000;

/**
 * Starts a plugin, reads and checks its handshake line, connects over mutual TLS pinned to the
 * certificate it announced, and checks its health. On any failure the plugin is killed and nothing
 * is left behind.
 */
export async function launch(options: LaunchOptions): Promise<Plugin> {
  // Checked first: options that are not an object (from untyped code) are INVALID_OPTIONS, not a TypeError here.
  if (typeof options !== 'object' || options === null) throw new GatehouseError('INVALID_OPTIONS', 'launch() takes an options object ({ command, cookie, ... })');
  const audit = options.audit;
  let config: ResolvedOptions;
  try {
    config = resolveOptions(options);
  } catch (error) {
    // Every refusal is recorded, a host's own bad options included: an auditor must see what was never started.
    recordRefusal(audit, { plugin: refusedName(options) }, error);
    throw error;
  }
  // Fail closed: a host that gave an audit log starts nothing its log cannot record (a full disk stopped it).
  if (audit?.failure !== undefined) {
    throw new GatehouseError(
      'AUDIT_WRITE_FAILED',
      `launch ${config.name}: the audit log cannot record (${audit.failure.message}), and nothing is started unaudited; ` +
        'fix what stopped it (disk space, permissions) and open the log again',
      { cause: audit.failure },
    );
  }
  const started = Date.now();
  // The host's own directory for its link to the plugin's socket, made meanwhile.
  const socketLink = new PluginSocketLink();
  // Private 0700 directory for the plugin's socket (and temporary files): no other user can reach it.
  const [socketDir, identity] = await Promise.all([
    mkdtemp(join(tmpdir(), 'gatehouse-')),
    // Made while the thread pool creates the directory: one after the other, they took ~1.5 ms of every launch.
    Promise.resolve(config.insecurePlaintext).then((plaintext) => (plaintext ? undefined : generateEphemeralIdentity())),
  ]).catch(async (error: unknown) => {
    await socketLink.release();
    throw error;
  });
  let child: PluginProcess | undefined;
  let startingPlugin: LivePlugin | undefined;
  let connection: PluginConnection | undefined;
  let multiplexed: MultiplexedConnection | undefined;
  let hostSockets: HostSocketDir | undefined;
  try {
    const socketGroup = config.unixSocketGroup === undefined ? undefined : await resolveGroup(config.unixSocketGroup, 'INVALID_OPTIONS');
    hostSockets = new HostSocketDir(socketGroup);
    const env = buildPluginEnv(
      {
        cookie: config.cookie,
        protocolVersions: config.protocolVersions,
        unixSocketDir: socketDir,
        multiplexGrpc: config.multiplexBroker,
        ...(config.minPort !== undefined ? { minPort: config.minPort } : {}),
        ...(config.maxPort !== undefined ? { maxPort: config.maxPort } : {}),
        ...(config.unixSocketGroup !== undefined ? { unixSocketGroup: config.unixSocketGroup } : {}),
        ...(identity ? { clientCertificatePem: identity.certificatePem } : {}),
      },
      // go-plugin 1.0.1 puts its socket in the temporary directory; make that ours too.
      { TMPDIR: socketDir, ...config.env },
    );
    // Aborted before the spawn (Ctrl-C while the caller sealed the plugin): nothing may start after the interrupt.
    throwIfAborted(options.signal);
    child = await PluginProcess.spawn({
      name: config.name,
      command: config.command,
      args: config.args,
      env,
      ...(config.cwd !== undefined ? { cwd: config.cwd } : {}),
      logger: config.logger,
      onStdoutLine: config.onStdoutLine,
      socketDir,
      // Made now for a sandbox, which sees only what exists when it starts.
      ...(options.sandbox !== undefined && options.sandbox !== false ? { hostSocketDir: await hostSockets.path() } : {}),
      isolation: options,
      stdin: config.stdin,
    });
    // Tracked from spawn on: a host that dies during the handshake must not leave the plugin behind.
    const starting = child;
    startingPlugin = { pid: starting.pid, socketDir, pluginUid: starting.uid, kill: async () => starting.signal('SIGKILL') };
    trackPlugin(startingPlugin);
    // Which user the plugin runs as: an auditor must tell a run-as plugin from one with the host's own rights.
    const runsAs = { ...(child.uid === undefined ? {} : { uid: child.uid }), ...(child.gid === undefined ? {} : { gid: child.gid }) };
    audit?.record({ type: 'launch', plugin: config.name, pid: child.pid, argv: [config.command, ...config.args], ...runsAs });
    // Made now, while the plugin starts on another core, rather than after its handshake line.
    const ownTls = identity === undefined ? undefined : hostTls(identity);
    const line = await child
      .readHandshakeLine(config.startTimeoutMs, options.signal)
      .catch((error: unknown) => Promise.reject(explainStartFailure(error, starting.stderr, { ...config, limits: options.limits })));
    const handshake = parseHandshakeLine(line, config.protocolVersions);
    checkAnnouncedPort(handshake, config.minPort, config.maxPort);
    audit?.record({
      type: 'handshake',
      plugin: config.name,
      // By pid, as launch, kill and exit: launches of one plugin may overlap, and their records interleave.
      pid: child.pid,
      protocolVersion: handshake.appVersion,
      network: handshake.network,
      address: handshake.address,
    });
    const credentials = channelCredentials(handshake, ownTls);
    const deadline = Math.max(started + config.startTimeoutMs, Date.now() + 1000);
    const target = { ...handshake, address: await socketLink.link(handshake, child.uid, deadline) };
    throwIfAborted(options.signal);
    if (config.multiplexBroker) {
      multiplexed = await connectMultiplexed(target, await hostSockets.path(), deadline);
      // The one connection is made, and yamux never makes another.
      await socketLink.release();
    }
    connection = await connectPlugin(
      multiplexed?.target ?? { ...target, release: () => socketLink.release() },
      credentials,
      deadline,
      config.maxMessageBytes,
      config.channelOptions,
      multiplexed?.failure,
    );
    throwIfAborted(options.signal);

    untrackPlugin(startingPlugin);
    const plugin = new Plugin(
      {
        name: config.name,
        protocolVersion: handshake.appVersion,
        network: handshake.network,
        address: handshake.address,
        certificateSha256: handshake.serverCertificate ? certificateFingerprint(handshake.serverCertificate) : undefined,
      },
      child,
      connection,
      socketDir,
      config.killGraceMs,
      config.logger,
      audit,
      {
        identity,
        pluginCertificateDer: handshake.serverCertificate,
        maxMessageBytes: config.maxMessageBytes,
        channelOptions: config.channelOptions,
        serverOptions: config.serverOptions,
        ...(socketGroup !== undefined ? { socketGroup } : {}),
        hostSockets,
        ...(child.uid !== undefined ? { pluginUid: child.uid } : {}),
        ...(multiplexed ? { multiplexed } : {}),
        stdio: {
          writers: config.stdio,
          onStdoutLine: config.onStdoutLine,
          stderr: child.stderr,
        },
        ...(config.versions ? { offered: new OfferedServices(config.versions, handshake.appVersion) } : {}),
      },
    );
    audit?.record({ type: 'connected', plugin: plugin.name, pid: plugin.pid, peerCertificateSha256: plugin.certificateSha256 ?? 'plaintext' });
    config.logger.debug(
      { plugin: plugin.name, pid: plugin.pid, version: plugin.protocolVersion, certificateSha256: plugin.certificateSha256 },
      'plugin connected',
    );
    return plugin;
  } catch (error) {
    recordRefusal(audit, { plugin: config.name }, error);
    // Best effort, step by step: a step that fails must neither skip the next nor replace the launch's own error.
    const tidy = async (step: () => Promise<unknown> | void): Promise<void> => {
      try {
        await step();
      } catch (cause) {
        config.logger.warn({ plugin: config.name, error: (cause as Error).message }, 'cleaning up after a failed launch');
      }
    };
    await tidy(() => multiplexed?.close());
    if (child) {
      child.signal('SIGKILL');
      // Attack: a plugin whose helper (in a session of its own) holds it with ptrace: killed, it stays a zombie only
      // the tracer sees, and a wait for its exit without bound kept the launch from ever returning.
      if (!(await exitsWithin(child, SIGKILL_WAIT_MS))) {
        config.logger.warn({ plugin: config.name, pid: child.pid }, `plugin did not exit within ${SIGKILL_WAIT_MS} ms of SIGKILL (something holds it, a tracer say); cleaning up without it`);
      }
    }
    await tidy(() => connection?.destroy());
    await tidy(() => socketLink.release());
    await tidy(() => hostSockets?.release());
    // A spawn that failed after the directory was given to the run-as user leaves no child to ask.
    const leftInPlace = await removeSocketDir(socketDir, child?.uid ?? options.user);
    if (leftInPlace !== undefined) config.logger.warn({ plugin: config.name }, `socket directory not removed: ${leftInPlace}`);
    if (startingPlugin) untrackPlugin(startingPlugin);
    throw error;
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new GatehouseError('START_ABORTED', 'the launch was aborted');
}

function channelCredentials(handshake: HandshakeLine, ownTls: HostTls | undefined): PluginCredentials {
  if (ownTls === undefined) {
    if (handshake.serverCertificate !== undefined) {
      throw new GatehouseError('TLS_FAILED', 'the plugin requires TLS but the host was asked for plaintext');
    }
    return { connector: undefined, channelCredentials: () => grpc.credentials.createInsecure() };
  }
  if (handshake.serverCertificate === undefined) {
    // A plugin (or an impostor on its stdout) that offers no certificate would get our calls in clear.
    throw new GatehouseError(
      'PLAINTEXT_REFUSED',
      `the plugin offered no TLS certificate in its handshake line (it announced plaintext gRPC on ` +
        `${handshake.network} ${handshake.address}), so any local process could read or forge its calls; ` +
        `use a plugin that supports go-plugin AutoMTLS (a go-plugin Go plugin, or gatehouse's serve()), or accept ` +
        `plaintext by name with insecurePlaintext: true (gatehouse call --insecure). If you write the plugin ` +
        `(in another language, as go-plugin's docs teach, with five fields): read the host's certificate (PEM) ` +
        `from PLUGIN_CLIENT_CERT, serve TLS requiring exactly that client certificate, and announce your own ` +
        `certificate as a sixth field (unpadded base64 of its DER); see docs/other-languages.md`,
    );
  }
  return pinnedPluginCredentials(ownTls, handshake.serverCertificate);
}

interface ResolvedOptions {
  command: string;
  args: readonly string[];
  name: string;
  cookie: MagicCookie;
  protocolVersions: readonly number[];
  versions: CheckedVersions | undefined;
  env: Readonly<Record<string, string>>;
  cwd: string | undefined;
  logger: Logger;
  startTimeoutMs: number;
  killGraceMs: number;
  insecurePlaintext: boolean;
  /** The magic cookie's key, for errors: its value is never quoted. */
  cookieKey: string;
  stdin: 'ignore' | 'inherit';
  onStdoutLine: (line: string) => void;
  maxMessageBytes: number;
  channelOptions: grpc.ChannelOptions;
  serverOptions: grpc.ServerOptions;
  multiplexBroker: boolean;
  stdio: PluginStdio;
  minPort: number | undefined;
  maxPort: number | undefined;
  unixSocketGroup: string | undefined;
}

function resolveOptions(options: LaunchOptions): ResolvedOptions {
  const invalid = (message: string): never => {
    throw new GatehouseError('INVALID_OPTIONS', message);
  };
  const noNul = (value: unknown, what: string): string =>
    typeof value === 'string' && !value.includes('\0') ? value : invalid(`${what} must be a string without NUL`);
  // Both are timers: one past 2^31 - 1 ms fires at once (Node makes it 1 ms), which would fail every start.
  const positive = (value: number | undefined, fallback: number, what: string, allowZero = false): number => {
    const v = value ?? fallback;
    return Number.isFinite(v) && (allowZero ? v >= 0 : v > 0) && v <= MAX_TIMER_MS ? v : invalid(`${what} must be a positive number of ms, at most ${MAX_TIMER_MS}`);
  };

  const command = noNul(options.command, 'command');
  // A relative command would be looked up through PATH or the working directory, which others may control.
  if (!isAbsolute(command)) invalid(`command must be an absolute path, got ${JSON.stringify(command.slice(0, 200))}`);
  const args = (options.args ?? []).map((arg, i) => noNul(arg, `args[${i}]`));
  validateCookie(options.cookie);
  if (options.versions !== undefined && options.protocolVersions !== undefined) {
    invalid('give either versions or protocolVersions, not both');
  }
  // The plugin would refuse it (serve() does, as go-plugin hosts should): any member of the group could
  // connect first and take the one multiplexed connection.
  if (options.multiplexBroker === true && options.unixSocketGroup !== undefined) {
    invalid('multiplexBroker and unixSocketGroup cannot go together: a member of the group could take the one multiplexed connection; drop one of the two');
  }
  // Attack: every member of the group may connect to the sockets shared with it (the plugin's, and the host's
  // brokered ones); without TLS nothing tells their calls from ours. serve() refuses it too.
  if (options.insecurePlaintext === true && options.unixSocketGroup !== undefined) {
    invalid('insecurePlaintext and unixSocketGroup cannot go together: any member of the group could call the plugin, and the host, without TLS; drop one of the two');
  }
  const protocolVersions = options.versions ? Object.keys(options.versions).map(Number) : (options.protocolVersions ?? [1]);
  if (protocolVersions.length === 0 || !protocolVersions.every((v) => Number.isSafeInteger(v) && v > 0)) {
    invalid('protocolVersions must be a non-empty list of positive integers');
  }
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (key === '' || key.includes('=') || key.includes('\0')) invalid(`env name ${JSON.stringify(key)} is not valid`);
    env[key] = noNul(value, `env.${key}`);
  }
  const name = options.name ?? defaultPluginName(command, args);
  const logger = options.logger ?? silentLogger;
  return {
    command,
    args,
    name,
    cookie: options.cookie,
    protocolVersions,
    versions: options.versions === undefined ? undefined : checkVersionedServices(options.versions, 'launch()'),
    env,
    cwd: options.cwd,
    logger,
    startTimeoutMs: positive(options.startTimeoutMs, DEFAULT_START_TIMEOUT_MS, 'startTimeoutMs'),
    killGraceMs: positive(options.killGraceMs, DEFAULT_KILL_GRACE_MS, 'killGraceMs', true),
    insecurePlaintext: options.insecurePlaintext === true,
    cookieKey: options.cookie.key,
    stdin:
      options.stdin === undefined || options.stdin === 'ignore' || options.stdin === 'inherit'
        ? (options.stdin ?? 'ignore')
        : invalid(`stdin must be 'ignore' or 'inherit'`),
    onStdoutLine: options.onStdoutLine ?? stdoutToLogger(logger, name),
    maxMessageBytes: positive(options.maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES, 'maxMessageBytes'),
    channelOptions: options.channelOptions ?? {},
    serverOptions: options.serverOptions ?? {},
    multiplexBroker: options.multiplexBroker === true,
    stdio: options.stdio ?? {},
    minPort: options.minPort,
    maxPort: options.maxPort,
    unixSocketGroup: options.unixSocketGroup === undefined ? undefined : String(options.unixSocketGroup),
  };
}

/** Interpreters whose plugins are better named by their script than by the interpreter. */
const INTERPRETERS = new Set(['node', 'nodejs', 'python', 'python3']);

/** The command's file name, or for an interpreter the script it runs: "plugin.js", not "node". */
/** The name a launch refused for its options is recorded under: the one it would have had, as far as the options say. */
function refusedName(options: LaunchOptions): string {
  if (typeof options.name === 'string') return options.name;
  if (typeof options.command !== 'string') return 'unnamed';
  const args = Array.isArray(options.args) ? options.args.filter((arg): arg is string => typeof arg === 'string') : [];
  return defaultPluginName(options.command, args);
}

export function defaultPluginName(command: string, args: readonly string[]): string {
  const script = args.find((arg) => !arg.startsWith('-'));
  const interpreter = command === process.execPath || INTERPRETERS.has(basename(command));
  return interpreter && script !== undefined ? basename(script) : basename(command);
}

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { GatehouseError, isGatehouseError } from '../errors.js';
import type { Logger } from '../logger.js';
import { generateEphemeralIdentity, parseCertificate } from '../tls/certificate.js';
import { peerServer, serverAcceptor, type PeerTls } from '../transport/acceptor.js';
import { GrpcBroker, DEFAULT_BROKER_DIAL_TIMEOUT_MS, type Broker } from '../transport/broker.js';
import { BrokerMultiplex } from '../transport/broker-multiplex.js';
import { brokerService } from '../transport/broker-protocol.js';
import { controllerImplementation, controllerService } from '../transport/controller.js';
import { readPluginEnv, type MagicCookie } from '../transport/env.js';
import { formatHandshakeLine, MAX_HANDSHAKE_LINE_BYTES } from '../transport/handshake.js';
import { healthImplementation, healthService } from '../transport/health.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../transport/limits.js';
import { resolveGroup, shareWithGroup } from '../transport/socket-group.js';
import { processPipes, redirectProcessOutput, StdioChannel, StdioForwarder, stdioService, type StdioPipes } from '../transport/stdio.js';
import { checkPluginService, checkVersionLists, type PluginService } from '../transport/service.js';
import { listenDirect, listenMultiplexed, type Listening, type ListenSpec } from './listen.js';
import { implementationProblems } from './implementation-check.js';
import { loggingThrows } from './handler-errors.js';
import { checkDescriptorSet, reflectionServices } from './reflection.js';
import { brokerImplementation } from './plugin-broker.js';
import { createPluginLogger } from './plugin-logger.js';

export type { PluginService } from '../transport/service.js';

export interface ServeOptions {
  /** Must equal the host's handshake cookie; a mismatch means this binary was run by hand. */
  cookie: MagicCookie;
  /** The services of each application protocol version this plugin speaks. */
  versions: Readonly<Record<number, readonly PluginService[]>>;
  /**
   * Serve without TLS when the host sends no certificate. Off by default: a host that did not ask
   * for mTLS gets a clear refusal instead of a plaintext plugin anyone on the machine could call.
   * Never over TCP or with a socket group (PLAINTEXT_REFUSED), where other users could call it anyway.
   */
  allowPlaintext?: boolean;
  /**
   * Where to listen: a unix socket in a private directory (default), or TCP on 127.0.0.1 within the
   * host's PLUGIN_MIN_PORT..PLUGIN_MAX_PORT, for hosts that cannot reach unix sockets.
   */
  network?: 'unix' | 'tcp';
  /** Largest message accepted or sent, in bytes, here and on brokered connections (default 16 MiB). */
  maxMessageBytes?: number;
  /**
   * Extra grpc-js server options for the plugin's server and its brokered servers, passed through (no limit on
   * the streams its host holds open unless `grpc.max_concurrent_streams` is given here).
   */
  serverOptions?: grpc.ServerOptions;
  /** Extra grpc-js channel options for the connections the plugin dials through the broker. */
  channelOptions?: grpc.ChannelOptions;
  /**
   * Serve gRPC reflection (grpc.reflection.v1alpha and v1) for these services, as go-plugin >= 1.2
   * does (default true): `gatehouse call` and grpcurl then need no .proto. Descriptors come from
   * proto-loader definitions and protobufEsService(); ts-proto's are listed by name only unless
   * `fileDescriptorSet` describes them.
   */
  reflection?: boolean;
  /**
   * A google.protobuf.FileDescriptorSet (`protoc --descriptor_set_out=FILE --include_imports`) that
   * reflection answers from, for definitions that carry no descriptors (ts-proto's). Read on the first
   * reflection query, not at start; at most maxMessageBytes.
   */
  fileDescriptorSet?: Uint8Array;
  /** Called after the server stopped, before the process exits. */
  onShutdown?: () => void | Promise<void>;
  /** Where the contract variables are read from (default: process.env). */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface ServedPlugin {
  readonly protocolVersion: number;
  readonly address: string;
  /** hclog JSON on stderr, parsed by the host into records under this plugin's name. */
  readonly logger: Logger;
  /** go-plugin's broker: serve services for the host to dial, and dial the ones the host serves. */
  readonly broker: Broker;
  /** Stops serving, runs onShutdown, removes the socket directory and exits the process. */
  shutdown(): Promise<never>;
}

const COOKIE_MESSAGE =
  'This binary is a plugin. These are not meant to be executed directly.\n' +
  'Please execute the program that consumes these plugins, which will\n' +
  'load any plugins automatically\n';

/** How often the plugin checks that its host is still alive (it then has a new parent). */
const PARENT_POLL_MS = 500;

/**
 * Serves a plugin the way go-plugin's `plugin.Serve` does, so either a gatehouse host or a go-plugin
 * host can run it. Never returns on failure: prints why on stderr and exits 1, as go-plugin does.
 */
export async function serve(options: ServeOptions): Promise<ServedPlugin> {
  // The real pipes, kept before stdio forwarding replaces process.stdout/stderr.write: hosts parse the
  // hclog lines from the stderr pipe, as go-plugin's logger writes to the original stderr.
  const pipes = processPipes();
  const logger = createPluginLogger((line) => pipes[StdioChannel.STDERR](Buffer.from(line)));
  try {
    const served = await startServing(options, processContext(options, logger, pipes));
    // The process exits at the end of a shutdown: its promise never settles.
    return { ...served, shutdown: served.shutdown as () => Promise<never> };
  } catch (error) {
    if (isGatehouseError(error, 'COOKIE_MISMATCH')) {
      process.stderr.write(COOKIE_MESSAGE);
    } else {
      const message = error instanceof Error ? error.message : String(error);
      logger.error({ code: isGatehouseError(error) ? error.code : undefined }, `plugin failed to start: ${message}`);
    }
    process.exit(1);
  }
}

/**
 * Where serve() meets the process it runs in. A plugin process has the real one; the test mode
 * (gatehouse-plugins/testing) runs the same serving code inside a test, without touching the process.
 */
export interface ServeContext {
  env: Readonly<Record<string, string | undefined>>;
  logger: Logger;
  pipes: StdioPipes;
  /** Hands the handshake line to the host. */
  announce(line: string): void;
  /** After the handshake: where the process's own stdout and stderr go from now on. */
  forwardOutput(stdio: StdioForwarder): void;
  /** Starts watching for the host's death and for signals; returns what stops watching. */
  watch(shutdown: () => void): () => void;
  /** The last step of a shutdown. */
  exit(): void;
}

/** A served plugin whose shutdown settles (in a plugin process it ends with process.exit). */
export type StartedPlugin = Omit<ServedPlugin, 'shutdown'> & { shutdown(): Promise<void> };

function processContext(options: ServeOptions, logger: Logger, pipes: StdioPipes): ServeContext {
  return {
    env: options.env ?? process.env,
    logger,
    pipes,
    announce: (line) => void process.stdout.write(line + '\n'),
    // From here on, what the plugin writes to stdout and stderr goes to the host over GRPCStdio.
    forwardOutput: (stdio) => redirectProcessOutput(stdio),
    watch: (shutdown) => {
      // An orphaned plugin would hold its socket and secrets forever: exit once the host is gone.
      const parentPid = process.ppid;
      const parentWatch = setInterval(() => {
        if (process.ppid !== parentPid) shutdown();
      }, PARENT_POLL_MS);
      parentWatch.unref();
      process.on('SIGTERM', shutdown);
      // Ctrl-C reaches the whole foreground process group; the host decides when its plugins stop.
      process.on('SIGINT', () => logger.debug({}, 'ignoring SIGINT; the host stops this plugin'));
      return () => clearInterval(parentWatch);
    },
    exit: () => process.exit(0),
  };
}

export async function startServing(options: ServeOptions, context: ServeContext): Promise<StartedPlugin> {
  const { logger, pipes } = context;
  // Every version's services, before anything is read or served: a wrong entry is named at start, in any version.
  const versions = checkVersionLists(options.versions, 'serve()', checkPluginService);
  const env = readPluginEnv(context.env, options.cookie);
  const ours = [...versions.keys()];
  const protocolVersion = negotiateVersion(ours, env.protocolVersions);
  if (!env.protocolVersions.includes(protocolVersion)) {
    logger.error(
      { hostVersions: env.protocolVersions, pluginVersions: ours },
      `no protocol version in common: the host offers ${env.protocolVersions.join(', ')}, this plugin speaks ${ours.join(', ')}`,
    );
  }
  const services = versions.get(protocolVersion) ?? [];
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const network = options.network ?? 'unix';
  if (network !== 'unix' && network !== 'tcp') {
    throw new GatehouseError('INVALID_OPTIONS', 'serve() network must be "unix" or "tcp"');
  }
  checkDescriptorSet(options.fileDescriptorSet, maxMessageBytes);
  // Attack: yamux has no authentication of its own and a loopback port is open to every local user, so
  // whoever connected first would own the plugin's one multiplexed connection and lock the host out.
  if (network === 'tcp' && env.multiplexGrpc) {
    throw new GatehouseError(
      'MULTIPLEX_UNSUPPORTED',
      'serve() refuses multiplexing (PLUGIN_MULTIPLEX_GRPC) over TCP: any local user could connect first and take ' +
        "the host's one connection; serve on a unix socket (the default), or launch without multiplexBroker",
    );
  }

  // Attack: the same, within the socket group: the directory is then 0710 and the socket 0660, so any member
  // of the group can connect first. Each connection of a non-multiplexed plugin proves itself with TLS instead.
  if (env.multiplexGrpc && env.unixSocketGroup !== undefined) {
    throw new GatehouseError(
      'MULTIPLEX_UNSUPPORTED',
      'serve() refuses multiplexing (PLUGIN_MULTIPLEX_GRPC) with a socket group (PLUGIN_UNIX_SOCKET_GROUP): any member ' +
        "of the group could connect first and take the host's one connection; launch without one of the two",
    );
  }

  const tls = await serverSecurity(env.clientCertificatePem, options, network, env.unixSocketGroup !== undefined, logger);

  // A fresh 0700 directory per plugin: no other user can reach (or swap) the sockets inside it.
  const parent = env.unixSocketDir ?? tmpdir();
  const socketDir = await mkdtemp(join(parent, 'gatehouse-plugin-')).catch((cause: Error) => {
    const from = env.unixSocketDir !== undefined ? 'PLUGIN_UNIX_SOCKET_DIR' : 'the temporary directory (TMPDIR)';
    throw new GatehouseError('ENV_INVALID', `cannot make the plugin's socket directory in ${parent}, ${from}: ${cause.message}; the host must name a directory the plugin may write`, { cause });
  });
  try {
    // PLUGIN_UNIX_SOCKET_GROUP: a host in that group (another user, say) may enter and connect, no more.
    const socketGroup = env.unixSocketGroup === undefined ? undefined : await resolveGroup(env.unixSocketGroup, 'ENV_INVALID');
    if (socketGroup !== undefined) {
      await shareWithGroup(socketDir, socketGroup, 0o710).catch((cause: Error) => {
        throw new GatehouseError('ENV_INVALID', `cannot share the socket directory with group ${socketGroup} (PLUGIN_UNIX_SOCKET_GROUP): ${cause.message}; the plugin's user must be a member of that group`, { cause });
      });
    }
    // go-plugin >= 1.6's multiplexed mode: the host's one connection carries every other as yamux streams.
    const multiplex = env.multiplexGrpc
      ? new BrokerMultiplex((info) => broker.send(info), {
          bridgeDir: socketDir,
          knockTimeoutMs: DEFAULT_BROKER_DIAL_TIMEOUT_MS,
          unannounced: (stream) => mainConnections.emit('connection', stream),
        })
      : undefined;
    const broker = new GrpcBroker({
      // The host dials what the plugin serves: its own host, whose streams go-plugin never caps either.
      peerIsPlugin: false,
      tls,
      // The plugin's own private directory, made above.
      socketDir: async () => socketDir,
      ...(socketGroup !== undefined ? { socketGroup } : {}),
      maxMessageBytes,
      channelOptions: options.channelOptions ?? {},
      serverOptions: options.serverOptions ?? {},
      // The host's sockets may belong to another user when the plugin is sandboxed; what proves a
      // brokered server is the host's pinned certificate, checked on every connection.
      checkAddress: async (_network, address) => ({ address, release: async () => {} }),
      liveness: { exit: () => undefined, settleExit: async () => undefined },
      dialTimeoutMs: DEFAULT_BROKER_DIAL_TIMEOUT_MS,
      ...(multiplex ? { multiplexer: multiplex } : {}),
    });

    const server = peerServer(options.serverOptions ?? {}, maxMessageBytes, false);
    server.addService(healthService, healthImplementation());
    server.addService(controllerService, controllerImplementation(() => void shutdown()));
    server.addService(brokerService, brokerImplementation(broker));
    const stdio = new StdioForwarder(pipes);
    server.addService(stdioService, stdio.implementation());
    for (const service of services) {
      for (const problem of implementationProblems(service)) logger.warn({}, problem);
      server.addService(service.definition, loggingThrows(service, logger));
    }
    if (options.reflection !== false) {
      for (const service of reflectionServices(services, options.fileDescriptorSet)) {
        server.addService(service.definition, service.implementation as grpc.UntypedServiceImplementation);
      }
    }

    const mainConnections = serverAcceptor(server, tls);
    const spec: ListenSpec = {
      network,
      socketDir,
      minPort: env.minPort,
      maxPort: env.maxPort,
      ...(socketGroup !== undefined ? { group: socketGroup } : {}),
    };
    const listening: Listening = multiplex
      ? await listenMultiplexed(spec, (session) => multiplex.attach(session))
      : await listenDirect(mainConnections, spec);

    let stopping: Promise<void> | undefined;
    const shutdown = (): Promise<void> =>
      (stopping ??= (async () => {
        stopWatching();
        // Ends the broker stream first: a host that keeps it open would hold up the graceful stop.
        await broker.close();
        stdio.end();
        // No new connection while the calls in flight finish (the multiplexed one is closed after them).
        mainConnections.close();
        await stopServer(server, logger);
        listening.close();
        try {
          await options.onShutdown?.();
        } finally {
          await rm(socketDir, { recursive: true, force: true });
        }
        context.exit();
      })());
    const stopWatching = context.watch(() => void shutdown());

    const line = formatHandshakeLine({
      appVersion: protocolVersion,
      network: listening.network,
      address: listening.address,
      ...(tls ? { serverCertificate: tls.own.certificateDer } : {}),
      // The 7th field goes only to a host that asked for multiplexing: older hosts refuse 7 fields.
      ...(multiplex ? { multiplex: true } : {}),
    });
    if (Buffer.byteLength(line) >= MAX_HANDSHAKE_LINE_BYTES) {
      throw new GatehouseError('HANDSHAKE_TOO_LONG', `socket path too long for the handshake line: ${listening.address}`);
    }
    context.announce(line);
    context.forwardOutput(stdio);
    logger.debug({ network: listening.network, address: listening.address, version: protocolVersion }, 'plugin address');
    return { protocolVersion, address: listening.address, logger, broker, shutdown };
  } catch (error) {
    // Nothing else would remove the directory (or a socket in it) of a start that failed.
    await rm(socketDir, { recursive: true, force: true });
    throw error;
  }
}

/** The server's TLS, pinned to the host's certificate; plaintext only when allowed by name, and never over TCP. */
async function serverSecurity(
  hostCertificatePem: string | undefined,
  options: ServeOptions,
  network: 'unix' | 'tcp',
  sharedWithGroup: boolean,
  logger: Logger,
): Promise<PeerTls | undefined> {
  if (hostCertificatePem !== undefined) {
    return { own: generateEphemeralIdentity(), peerCertificateDer: parseCertificate(Buffer.from(hostCertificatePem)).raw };
  }
  if (options.allowPlaintext !== true) {
    throw new GatehouseError(
      'PLAINTEXT_REFUSED',
      'the host sent no PLUGIN_CLIENT_CERT: enable AutoMTLS on the host, or pass allowPlaintext to serve()',
    );
  }
  // A loopback port, unlike our private socket directory, is open to every local user.
  if (network === 'tcp') {
    throw new GatehouseError('PLAINTEXT_REFUSED', 'serve() refuses plaintext over TCP: every local user could call the plugin');
  }
  // The same within a socket group: the directory is then 0710 and the socket 0660.
  if (sharedWithGroup) {
    throw new GatehouseError(
      'PLAINTEXT_REFUSED',
      'serve() refuses plaintext with a socket group (PLUGIN_UNIX_SOCKET_GROUP): every member of the group could call the plugin; enable AutoMTLS on the host',
    );
  }
  logger.warn({}, 'host sent no PLUGIN_CLIENT_CERT; serving WITHOUT TLS because allowPlaintext is set');
  return undefined;
}

/**
 * go-plugin's rule: the highest version both sides speak; with none in common, the lowest of ours,
 * so the host sees the mismatch in the handshake line and reports both sides' versions.
 */
export function negotiateVersion(ours: readonly number[], offered: readonly number[]): number {
  const sorted = ours.filter((v) => Number.isInteger(v) && v > 0).sort((a, b) => b - a);
  if (sorted.length === 0) {
    throw new GatehouseError('INVALID_OPTIONS', 'serve() needs at least one protocol version in `versions`');
  }
  return sorted.find((v) => offered.includes(v)) ?? (sorted[sorted.length - 1] as number);
}

/** Lets in-flight calls finish for a moment, then cuts them: a shutdown must not hang on a stuck call. */
function stopServer(server: grpc.Server, logger: Logger, graceMs = 1000): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => {
      // Said aloud so a host (and its tests) can tell a stop held up by an open call from a clean one.
      logger.warn({ graceMs }, `shutdown: calls still open after ${graceMs} ms were cut`);
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}

// gatehouse-plugins/testing: go-plugin's ServeConfig.Test / TestPluginGRPCConn for TypeScript plugins.
// The plugin's services run through the real serve() (environment contract, mutual TLS pinned both
// ways, health, controller, implementation checks) inside the test's own process, and a typed host
// client talks to them over the real socket, with no process spawned.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { GatehouseError } from './errors.js';
import { connectPlugin, pinnedPluginCredentials, type PluginConnection } from './host/connection.js';
import { openBrokerStream } from './host/plugin-session.js';
import { silentLogger, type Logger } from './logger.js';
import { startServing, type ServeOptions, type StartedPlugin } from './plugin/serve.js';
import { generateEphemeralIdentity } from './tls/certificate.js';
import { hostTls } from './tls/pinning.js';
import { DEFAULT_BROKER_DIAL_TIMEOUT_MS, GrpcBroker, type Broker, type BrokerSettings } from './transport/broker.js';
import { buildPluginEnv } from './transport/env.js';
import { parseHandshakeLine } from './transport/handshake.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from './transport/limits.js';
import { serviceDefinition, type GeneratedServiceConstructor, type ServiceSource } from './transport/service.js';
import { createServiceClient, type PluginLiveness } from './transport/service-client.js';
import type { ServiceClient } from './transport/service-client-types.js';
import { StdioChannel } from './transport/stdio.js';

/** Time from start to a healthy connection: the same order as launch()'s default. */
const TEST_START_TIMEOUT_MS = 10_000;

export interface TestPluginOptions {
  /** What the plugin would pass to serve(): the services of each protocol version. */
  versions: ServeOptions['versions'];
  /** The versions the host offers (default: every version in `versions`). */
  protocolVersions?: readonly number[];
  /** Receives what the plugin logs through `served.logger` (default: nothing). */
  logger?: Logger;
  maxMessageBytes?: number;
  serverOptions?: grpc.ServerOptions;
  network?: 'unix' | 'tcp';
}

/** A plugin served in this process, and a host connection to it. Close it (or `await using`) when done. */
export interface TestPlugin extends AsyncDisposable {
  /** The version serve() negotiated. */
  readonly protocolVersion: number;
  /** What serve() returned to the plugin: its logger and broker. */
  readonly served: Omit<StartedPlugin, 'shutdown'>;
  /** The host's side of the broker, as plugin.broker: serve the callbacks the plugin dials, dial what it serves. */
  readonly broker: Broker;
  /** A typed client, as plugin.client() gives it. */
  client<D extends grpc.ServiceDefinition, G>(service: GeneratedServiceConstructor<D, G>): ServiceClient<D, G>;
  client<D extends grpc.ServiceDefinition>(service: ServiceSource<D>): ServiceClient<D>;
  /**
   * A plain grpc-js client, as plugin.grpcClient() gives it: for client and bidi streaming, which the
   * typed client does not offer. Its channel is a second connection, pinned the same way.
   */
  grpcClient<G extends grpc.Client>(service: GeneratedServiceConstructor<grpc.ServiceDefinition, G>, serviceName?: string): G;
  grpcClient(service: ServiceSource<grpc.ServiceDefinition>, serviceName?: string): InstanceType<grpc.ServiceClientConstructor>;
  /** Shuts the plugin down as a host's Shutdown would, and closes the connection. */
  close(): Promise<void>;
}

export async function testPlugin(options: TestPluginOptions): Promise<TestPlugin> {
  const protocolVersions = options.protocolVersions ?? Object.keys(options.versions ?? {}).map(Number);
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  // A cookie of its own per test plugin: the plugin side checks it as in a real launch.
  const cookie = { key: 'GATEHOUSE_TEST_PLUGIN', value: randomUUID() };
  const identity = generateEphemeralIdentity();
  const socketDir = await mkdtemp(join(tmpdir(), 'gatehouse-test-'));
  let line: string | undefined;
  let started: StartedPlugin | undefined;
  let connection: PluginConnection | undefined;
  try {
    const env = buildPluginEnv({
      cookie,
      protocolVersions,
      unixSocketDir: socketDir,
      clientCertificatePem: identity.certificatePem,
    });
    const discard = (_data: Buffer, done?: (error?: Error | null) => void): void => done?.();
    started = await startServing(
      {
        cookie,
        versions: options.versions,
        maxMessageBytes,
        ...(options.serverOptions ? { serverOptions: options.serverOptions } : {}),
        ...(options.network ? { network: options.network } : {}),
      },
      {
        env,
        logger: options.logger ?? silentLogger,
        pipes: { [StdioChannel.STDOUT]: discard, [StdioChannel.STDERR]: discard },
        announce: (announced) => (line = announced),
        // The test's own output stays the test's: only a plugin process hands its stdio to the host.
        forwardOutput: () => {},
        watch: () => () => {},
        exit: () => {},
      },
    );
    if (line === undefined) throw new GatehouseError('HANDSHAKE_INVALID', 'serve() announced no handshake line');
    const handshake = parseHandshakeLine(line, protocolVersions);
    if (handshake.serverCertificate === undefined) {
      throw new GatehouseError('CERTIFICATE_INVALID', 'serve() announced no certificate in test mode');
    }
    const credentials = pinnedPluginCredentials(hostTls(identity), handshake.serverCertificate);
    connection = await connectPlugin(handshake, credentials, Date.now() + TEST_START_TIMEOUT_MS, maxMessageBytes, {});
    return new InProcessPlugin(started, connection, socketDir, {
      tls: { own: identity, peerCertificateDer: handshake.serverCertificate },
      maxMessageBytes,
      serverOptions: options.serverOptions ?? {},
    });
  } catch (error) {
    connection?.destroy();
    await started?.shutdown();
    await rm(socketDir, { recursive: true, force: true });
    throw error;
  }
}

class InProcessPlugin implements TestPlugin {
  readonly protocolVersion: number;
  readonly served: Omit<StartedPlugin, 'shutdown'>;
  private closing: Promise<void> | undefined;
  // The plugin lives as long as this object: it "exits" only when closed.
  private readonly liveness: PluginLiveness = { exit: () => undefined, settleExit: async () => undefined };
  private readonly hostBroker: GrpcBroker;
  private brokerStreamOpen = false;
  private hostSockets: Promise<string> | undefined;

  constructor(
    private readonly started: StartedPlugin,
    private readonly connection: PluginConnection,
    private readonly socketDir: string,
    host: Pick<BrokerSettings, 'tls' | 'maxMessageBytes' | 'serverOptions'>,
  ) {
    this.protocolVersion = started.protocolVersion;
    this.served = { protocolVersion: started.protocolVersion, address: started.address, logger: started.logger, broker: started.broker };
    this.hostBroker = new GrpcBroker({
      ...host,
      // The host's brokered sockets in a directory of their own, as launch() keeps them; it goes with
      // socketDir. Nothing here installs exit hooks (as launch()'s directories and socket links do): the
      // test's process is left alone, and the pinned certificates prove each brokered peer.
      socketDir: () => (this.hostSockets ??= mkdtemp(join(socketDir, 'host-'))),
      channelOptions: {},
      checkAddress: async (_network, address) => ({ address, release: async () => {} }),
      liveness: this.liveness,
      dialTimeoutMs: DEFAULT_BROKER_DIAL_TIMEOUT_MS,
      peerIsPlugin: true,
    });
  }

  get broker(): Broker {
    // Opened on first use, not at start as launch() does, so that a test without callbacks closes as
    // it did (see close()). What the plugin announces before waits in its broker until the stream opens.
    if (!this.brokerStreamOpen) {
      this.brokerStreamOpen = true;
      openBrokerStream(this.connection.calls, this.hostBroker);
    }
    return this.hostBroker;
  }

  client<D extends grpc.ServiceDefinition>(service: ServiceSource<D>): ServiceClient<D> {
    return createServiceClient(this.connection.calls, serviceDefinition(service, 'testPlugin().client()'), this.liveness);
  }

  grpcClient<G extends grpc.Client>(service: GeneratedServiceConstructor<grpc.ServiceDefinition, G>, serviceName?: string): G;
  grpcClient(service: ServiceSource<grpc.ServiceDefinition>, serviceName?: string): InstanceType<grpc.ServiceClientConstructor>;
  grpcClient(service: ServiceSource<grpc.ServiceDefinition>, serviceName = 'PluginService'): InstanceType<grpc.ServiceClientConstructor> {
    return this.connection.grpcClient(serviceDefinition(service, 'testPlugin().grpcClient()'), serviceName);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.hostBroker.close();
      if (this.brokerStreamOpen) {
        // As plugin.kill() does: the plugin shuts down while the connection still carries the broker
        // stream's end. Destroyed at once instead, a just-opened stream may never be seen to end by the
        // plugin's server, whose shutdown then waits its whole grace period for it.
        await this.started.shutdown();
        this.connection.destroy();
      } else {
        // Calls the test left open are cut rather than waited for.
        this.connection.destroy();
        await this.started.shutdown();
      }
      await rm(this.socketDir, { recursive: true, force: true });
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { GatehouseError } from '../errors.js';
import { classifyTlsFailure, pinnedChannelCredentials, pinnedConnector, TLS_SERVER_NAME, type HostTls, type PinnedConnector } from '../tls/pinning.js';
import { grpcJsCalls, leanCalls, type CallPath } from '../transport/call-path.js';
import { clientOn, closeAfterPeerGone, DEFAULT_FLOW_CONTROL_WINDOW_BYTES, destroyChannel, grpcTarget, openChannel, serviceClientOn } from '../transport/channel.js';
import { GrpcHttp2Client } from '../transport/grpc-http2-client.js';
import { tcpEndpoint, type HandshakeLine } from '../transport/handshake.js';
import { healthService, PLUGIN_HEALTH_SERVICE, ServingStatus, type HealthCheckResponse } from '../transport/health.js';
import { peerText } from '../transport/peer-text.js';

/** What the plugin's author must change, for the two statuses a plugin outside Go or TypeScript most often returns. */
function healthHint(cause: unknown): string {
  const code = (cause as { code?: unknown }).code;
  // UNIMPLEMENTED: no health service at all; NOT_FOUND: a stock servicer without "plugin".
  if (code === grpc.status.UNIMPLEMENTED) {
    return `; the plugin does not serve grpc.health.v1.Health/Check, which go-plugin requires of every plugin: ` +
      `serve it, answering SERVING for the service "${PLUGIN_HEALTH_SERVICE}" (docs/other-languages.md)`;
  }
  if (code === grpc.status.NOT_FOUND) {
    return `; the plugin's health service has no status for the service "${PLUGIN_HEALTH_SERVICE}", the one ` +
      `go-plugin asks about: set it to SERVING (docs/other-languages.md)`;
  }
  return '';
}

/** The first call on a new connection: proves TLS and the pin, and that the plugin says it is up. */
export async function checkHealth(calls: CallPath, timeoutMs: number): Promise<void> {
  let response: HealthCheckResponse;
  try {
    response = await calls.unary(healthService.Check, { service: PLUGIN_HEALTH_SERVICE }, { timeoutMs });
  } catch (cause) {
    throw new GatehouseError('HEALTH_CHECK_FAILED', `health check failed: ${peerText((cause as Error).message)}${healthHint(cause)}`, { cause });
  }
  if (response.status !== ServingStatus.SERVING) {
    throw new GatehouseError(
      'HEALTH_CHECK_FAILED',
      `plugin health is ${ServingStatus[response.status] ?? response.status}, not SERVING`,
    );
  }
}

/** The pin for the lean client (undefined in plaintext), the same for a grpc-js channel, and the mismatch either saw, if any. */
export interface PluginCredentials {
  connector: PinnedConnector | undefined;
  /** Made on first use: its CA-based context would cost a host's first launch Node 20's root store. */
  channelCredentials: () => grpc.ChannelCredentials;
  mismatch?: GatehouseError;
}

/** Our identity, pinned to the plugin's exact certificate; a mismatch is kept to be reported as such. */
export function pinnedPluginCredentials(host: HostTls, pluginCertificateDer: Buffer): PluginCredentials {
  const noteMismatch = (error: GatehouseError): void => void (pinned.mismatch = error);
  let channel: grpc.ChannelCredentials | undefined;
  const pinned: PluginCredentials = {
    connector: pinnedConnector(host, pluginCertificateDer, noteMismatch),
    channelCredentials: () => (channel ??= pinnedChannelCredentials(host.own, pluginCertificateDer, noteMismatch)),
  };
  return pinned;
}

/** Where the plugin listens, as the host connects to it, and the host's link to drop once the connection has closed for good. */
type PluginTarget = Pick<HandshakeLine, 'network' | 'address'> & { release?: () => Promise<void> };

/**
 * The host's connection to one plugin. Without grpc-js channel options it is one socket: the lean
 * node:http2 client carries every call (the caller's, the health check, Shutdown, the broker and
 * stdio streams), and a grpc-js channel is opened only if the caller asks for a grpc-js client.
 * With channel options, grpc-js carries every call, so that each option applies to all of them.
 */
export class PluginConnection {
  readonly calls: CallPath;
  private channel: grpc.Channel | undefined;
  private readonly lean: GrpcHttp2Client | undefined;
  private closed = false;

  constructor(
    private readonly target: PluginTarget,
    private readonly credentials: PluginCredentials,
    private readonly maxMessageBytes: number,
    private readonly channelOptions: grpc.ChannelOptions,
  ) {
    if (Object.keys(channelOptions).length === 0) {
      this.lean = openLeanClient(target, credentials.connector, maxMessageBytes);
      this.calls = leanCalls(this.lean);
    } else {
      this.calls = grpcJsCalls(clientOn(this.grpcChannel()));
    }
  }

  /** The grpc-js channel to the plugin (grpcClient()), opened on first use, with the same pin. */
  grpcChannel(): grpc.Channel {
    if (this.channel === undefined) {
      this.channel = openChannel(grpcTarget(this.target), this.credentials.channelCredentials(), this.maxMessageBytes, this.channelOptions);
      // Asked for after the plugin has gone: its calls fail at once, as on the channel of a live plugin
      // that then exited, instead of a channel that nobody closes retrying a dead socket.
      if (this.closed) this.channel.close();
    }
    return this.channel;
  }

  /** A plain grpc-js client for `definition` on grpcChannel(): plugin.grpcClient(), testPlugin().grpcClient(). */
  grpcClient(definition: grpc.ServiceDefinition, serviceName: string): InstanceType<grpc.ServiceClientConstructor> {
    return serviceClientOn(this.grpcChannel(), definition, serviceName);
  }

  /** For a plugin that has exited: what it sent last is read for up to `maxWaitMs`, then every socket is destroyed (H8). */
  async closeAfterPeerGone(maxWaitMs: number): Promise<void> {
    this.closed = true;
    await Promise.all([this.lean?.closeAfterPeerGone(maxWaitMs), this.channel && closeAfterPeerGone(this.channel, maxWaitMs)]);
    await this.target.release?.();
  }

  /** Ends every call and destroys the sockets now. */
  destroy(): void {
    this.closed = true;
    this.lean?.destroy();
    if (this.channel) destroyChannel(this.channel);
    void this.target.release?.();
  }
}

/** The lean client, connecting at once, pinned as the channel is. */
function openLeanClient(target: PluginTarget, pinned: PinnedConnector | undefined, maxMessageBytes: number): GrpcHttp2Client {
  const where = target.network === 'unix' ? { path: target.address } : tcpEndpoint(target.address);
  const client = new GrpcHttp2Client({
    // A plaintext plugin was asked for by name (insecurePlaintext); every other connection is pinned TLS.
    connect: () => (pinned ? pinned.connect(where) : net.connect(where)),
    ...(pinned ? { ready: pinned.ready } : {}),
    authority: TLS_SERVER_NAME,
    maxReceiveMessageBytes: maxMessageBytes,
    maxSendMessageBytes: maxMessageBytes,
    windowBytes: DEFAULT_FLOW_CONTROL_WINDOW_BYTES,
  });
  client.connect();
  return client;
}

/**
 * Connects to the plugin and proves the connection with a health check before anyone uses it; a TLS
 * failure is reported as what it means (another certificate, or our certificate refused). `abandon`
 * rejecting (the connection under it is gone) ends the wait at once with its error.
 */
export async function connectPlugin(
  target: PluginTarget,
  credentials: PluginCredentials,
  deadline: number,
  maxMessageBytes: number,
  channelOptions: grpc.ChannelOptions,
  abandon?: Promise<never>,
): Promise<PluginConnection> {
  const connection = new PluginConnection(target, credentials, maxMessageBytes, channelOptions);
  try {
    const health = checkHealth(connection.calls, deadline - Date.now());
    await (abandon ? Promise.race([health, abandon]) : health);
    return connection;
  } catch (error) {
    connection.destroy();
    throw credentials.mismatch ?? classifyTlsFailure(String((error as Error).message)) ?? error;
  }
}


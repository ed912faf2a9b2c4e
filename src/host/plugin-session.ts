import * as grpc from '@grpc/grpc-js';
import { GatehouseError } from '../errors.js';
import type { EphemeralIdentity } from '../tls/certificate.js';
import { GrpcBroker, DEFAULT_BROKER_DIAL_TIMEOUT_MS, type BrokerLink } from '../transport/broker.js';
import { BrokerMultiplex } from '../transport/broker-multiplex.js';
import { brokerService, type ConnInfo } from '../transport/broker-protocol.js';
import { writePaced } from '../transport/paced-writes.js';
import { peerText } from '../transport/peer-text.js';
import type { CallPath } from '../transport/call-path.js';
import type { PluginLiveness } from '../transport/service-client.js';
import type { HostSocketDir } from './host-socket-dir.js';
import { linkPluginSocket } from './plugin-socket.js';
import type { MultiplexedConnection } from './multiplexed-connection.js';
import { readPluginStdio, type StdioRouting } from './plugin-stdio.js';
import type { Logger } from '../logger.js';
import type { OfferedServices } from './versioned-services.js';

/** What launch() learned and chose for one plugin, beyond its process and its channel. */
export interface SessionSpec {
  /** The host's identity for this plugin; undefined only for plaintext by name. */
  identity: EphemeralIdentity | undefined;
  /** The certificate the plugin announced in its handshake line. */
  pluginCertificateDer: Buffer | undefined;
  maxMessageBytes: number;
  channelOptions: grpc.ChannelOptions;
  serverOptions: grpc.ServerOptions;
  /** The user the plugin runs as, who must own the sockets it announces. */
  pluginUid?: number;
  /** The gid the brokered sockets are shared with (PLUGIN_UNIX_SOCKET_GROUP). */
  socketGroup?: number;
  /** Where the host's brokered sockets go: its own directory, never the plugin's. Removed by release(). */
  hostSockets: HostSocketDir;
  /** Set when the plugin multiplexes (PLUGIN_MULTIPLEX_GRPC): the broker then uses yamux streams. */
  multiplexed?: MultiplexedConnection;
  stdio: StdioRouting;
  logger: Logger;
  pluginName: string;
  /** Set when the host declared services per version: what the negotiated one offers. */
  offered?: OfferedServices;
}

/** Refusals reported per plugin at most: a plugin dialing id after id cannot flood the host's log. */
const MAX_REPORTED_REFUSALS = 16;

/**
 * Why a plugin refuses the certificate of a service the host serves through the broker, when the host's
 * certificate is the very one the plugin was given to trust: a plugin built with go-plugin before 1.4.4,
 * whose broker.Dial has no roots and no server name under AutoMTLS (go-plugin's own host fails it the
 * same way with AutoMTLS on); the Go error the plugin gets ("certificate is valid for localhost, not
 * unused") names neither.
 */
function brokerCertificateRefused(id: number, error: Error): string {
  return (
    `the plugin refused the host's certificate when it dialed broker id ${id} (TLS alert ${(error as NodeJS.ErrnoException).code ?? error.message}), ` +
    'so its call back into the host failed. A Go plugin built with go-plugin before 1.4.4 cannot dial its host through the ' +
    'broker over mutual TLS, which a gatehouse host always uses (hashicorp/go-plugin#109): rebuild the plugin with ' +
    'go-plugin 1.4.4 or later'
  );
}

/**
 * The host's side of everything that rides on a plugin's main connection besides the caller's own
 * calls: the broker, the plugin's forwarded stdio, and the services its protocol version offers.
 */
export class PluginSession {
  readonly broker: GrpcBroker;
  private readonly stdio: { close(): void };
  /** Broker ids whose dial the plugin refused, each reported once. */
  private readonly refusedIds = new Set<number>();

  constructor(
    private readonly spec: SessionSpec,
    calls: CallPath,
    liveness: PluginLiveness,
  ) {
    const { identity, pluginCertificateDer, multiplexed } = spec;
    let multiplexer: BrokerMultiplex | undefined;
    if (multiplexed) {
      multiplexer = new BrokerMultiplex((info) => this.broker.send(info), {
        bridgeDir: multiplexed.bridgeDir,
        knockTimeoutMs: DEFAULT_BROKER_DIAL_TIMEOUT_MS,
      });
      multiplexer.attach(multiplexed.session);
    }
    this.broker = new GrpcBroker({
      // A plugin's streams on what the host serves are capped: it is the side the host guards against.
      peerIsPlugin: true,
      tls: identity && pluginCertificateDer ? { own: identity, peerCertificateDer: pluginCertificateDer } : undefined,
      socketDir: () => spec.hostSockets.path(),
      ...(spec.socketGroup !== undefined ? { socketGroup: spec.socketGroup } : {}),
      maxMessageBytes: spec.maxMessageBytes,
      channelOptions: spec.channelOptions,
      serverOptions: spec.serverOptions,
      // The same rule as for the plugin's own socket: one the plugin names must be the plugin user's.
      checkAddress: (network, address, deadline) => linkPluginSocket({ network, address }, spec.pluginUid, deadline),
      liveness,
      dialTimeoutMs: DEFAULT_BROKER_DIAL_TIMEOUT_MS,
      ...(multiplexer ? { multiplexer } : {}),
      onCertificateRefused: (id, error) => {
        // Once per id: the plugin's gRPC client retries, and the reason does not change.
        if (this.refusedIds.size >= MAX_REPORTED_REFUSALS || this.refusedIds.has(id)) return;
        this.refusedIds.add(id);
        spec.logger.warn({ plugin: spec.pluginName, brokerId: id, cause: error.message }, brokerCertificateRefused(id, error));
      },
    });
    openBrokerStream(calls, this.broker);
    this.stdio = readPluginStdio(calls, spec.stdio, spec.logger, spec.pluginName);
  }

  /** The certificates (and key) a reattach record is made of. */
  reattachFacts(): {
    identity: EphemeralIdentity | undefined;
    pluginCertificateDer: Buffer | undefined;
    multiplexed: boolean;
    pluginUid: number | undefined;
  } {
    const { identity, pluginCertificateDer, multiplexed, pluginUid } = this.spec;
    return { identity, pluginCertificateDer, multiplexed: multiplexed !== undefined, pluginUid };
  }

  /** Throws SERVICE_NOT_OFFERED for a service the negotiated protocol version does not offer. */
  checkOffered(definition: grpc.ServiceDefinition): void {
    this.spec.offered?.check(definition);
  }

  /** Ends the broker stream and everything brokered; the main connection stays up (for Shutdown). */
  async close(): Promise<void> {
    await this.broker.close();
  }

  /** The plugin's last stderr lines, oldest first and made one line each. */
  stderrTail(): string[] {
    return this.spec.stdio.stderr.lastLines();
  }

  /** Once the plugin has exited: its stdio stream, the multiplexed connection and the host's socket directory go too. */
  async release(): Promise<void> {
    await this.close();
    this.stdio.close();
    await this.spec.multiplexed?.close();
    await this.spec.hostSockets.release();
  }
}

/**
 * Opens go-plugin's broker stream at once, as a go-plugin host does, so that a plugin may announce a
 * service before the host asks for it. A plugin without a broker (one written to go-plugin's non-Go
 * guide, say) answers UNIMPLEMENTED: only the broker's own operations then fail, with that reason.
 */
export function openBrokerStream(calls: CallPath, broker: GrpcBroker): void {
  const call = calls.bidiStream(brokerService.StartStream, {});
  // Paced: a plugin knocking without end while reading none of the acknowledgements is held to the windows.
  const link: BrokerLink = { send: (info) => writePaced(call, info), close: () => call.cancel() };
  broker.attach(link);
  call.on('data', (info: ConnInfo) => broker.receive(info));
  call.on('error', (error: grpc.ServiceError) => {
    const reason =
      error.code === grpc.status.UNIMPLEMENTED
        ? "the plugin does not serve go-plugin's broker (plugin.GRPCBroker)"
        : `the broker stream failed: ${grpc.status[error.code] ?? error.code}: ${peerText(error.details)}`;
    broker.detach(link, new GatehouseError('BROKER_FAILED', reason, { cause: error }));
  });
  call.on('end', () => broker.detach(link, new GatehouseError('BROKER_FAILED', 'the plugin ended the broker stream')));
}

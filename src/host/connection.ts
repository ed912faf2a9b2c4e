import { lstat } from 'node:fs/promises';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { GatehouseError } from '../errors.js';
import type { EphemeralIdentity } from '../tls/certificate.js';
import { channelCredentials, classifyTlsFailure, pinnedTlsOptions, TLS_SERVER_NAME, type PinnedTlsOptions } from '../tls/pinning.js';
import { clientOn, DEFAULT_FLOW_CONTROL_WINDOW_BYTES, grpcTarget, openChannel } from '../transport/channel.js';
import { UnaryClient } from '../transport/grpc-unary-client.js';
import { tcpEndpoint, type HandshakeLine } from '../transport/handshake.js';
import { healthService, PLUGIN_HEALTH_SERVICE, ServingStatus, type HealthCheckResponse } from '../transport/health.js';

export function unaryCall<Req, Res>(
  client: grpc.Client,
  method: grpc.MethodDefinition<Req, Res>,
  request: Req,
  options: grpc.CallOptions,
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    client.makeUnaryRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      new grpc.Metadata(),
      options,
      (error, response) => (error ? reject(error) : resolve(response as Res)),
    );
  });
}

/** The first call on a new connection: proves TLS and the pin, and that the plugin says it is up. */
export async function checkHealth(client: grpc.Client, deadline: Date): Promise<void> {
  let response: HealthCheckResponse;
  try {
    response = await unaryCall(client, healthService.Check, { service: PLUGIN_HEALTH_SERVICE }, { deadline });
  } catch (cause) {
    throw new GatehouseError('HEALTH_CHECK_FAILED', `health check failed: ${(cause as Error).message}`, { cause });
  }
  if (response.status !== ServingStatus.SERVING) {
    throw new GatehouseError(
      'HEALTH_CHECK_FAILED',
      `plugin health is ${ServingStatus[response.status] ?? response.status}, not SERVING`,
    );
  }
}

/** Channel credentials, the same pin for node:tls (undefined in plaintext), and the pin mismatch their TLS check saw, if any. */
export interface PluginCredentials {
  credentials: grpc.ChannelCredentials;
  tls: PinnedTlsOptions | undefined;
  mismatch?: GatehouseError;
}

/** Our identity, pinned to the plugin's exact certificate; a mismatch is kept to be reported as such. */
export function pinnedPluginCredentials(identity: EphemeralIdentity, pluginCertificateDer: Buffer): PluginCredentials {
  const options = pinnedTlsOptions(identity, pluginCertificateDer, (error) => (pinned.mismatch = error));
  const pinned: PluginCredentials = {
    credentials: channelCredentials(options),
    tls: options,
  };
  return pinned;
}

/**
 * The lean unary client (node:http2) on its own connection to the plugin, with the same pin as the
 * channel. It connects at once, so that its TLS handshake overlaps the channel's health check instead
 * of delaying the first call.
 */
export function openUnaryClient(
  target: Pick<HandshakeLine, 'network' | 'address'>,
  pinned: PinnedTlsOptions | undefined,
  maxMessageBytes: number,
): UnaryClient {
  const where = target.network === 'unix' ? { path: target.address } : tcpEndpoint(target.address);
  const client = new UnaryClient({
    // A plaintext plugin was asked for by name (insecurePlaintext); every other connection is pinned TLS.
    connect: () => (pinned ? tls.connect({ ...where, ...pinned, ALPNProtocols: ['h2'] }) : net.connect(where)),
    authority: TLS_SERVER_NAME,
    maxReceiveMessageBytes: maxMessageBytes,
    maxSendMessageBytes: maxMessageBytes,
    windowBytes: DEFAULT_FLOW_CONTROL_WINDOW_BYTES,
  });
  client.connect();
  return client;
}

/**
 * Opens the plugin's channel and proves it with a health check before anyone uses it; a TLS failure
 * is reported as what it means (another certificate, or our certificate refused). `abandon` rejecting
 * (the connection under the channel is gone) ends the wait at once with its error.
 */
export async function connectChecked(
  handshake: Pick<HandshakeLine, 'network' | 'address'>,
  credentials: PluginCredentials,
  deadline: Date,
  maxMessageBytes: number,
  channelOptions: grpc.ChannelOptions,
  abandon?: Promise<never>,
): Promise<grpc.Channel> {
  const channel = openChannel(grpcTarget(handshake), credentials.credentials, maxMessageBytes, channelOptions);
  try {
    const health = checkHealth(clientOn(channel), deadline);
    await (abandon ? Promise.race([health, abandon]) : health);
    return channel;
  } catch (error) {
    channel.close();
    throw credentials.mismatch ?? classifyTlsFailure(String((error as Error).message)) ?? error;
  }
}

/**
 * The socket must be a socket and belong to the user the plugin runs as (ours): a plugin that names a
 * socket another user controls would have us talk to that user's server.
 */
export async function checkSocketOwnership(
  address: Pick<HandshakeLine, 'network' | 'address'>,
  owner: number | undefined = process.getuid?.(),
): Promise<void> {
  if (address.network !== 'unix') return;
  const stats = await lstat(address.address).catch((cause: unknown) => {
    throw new GatehouseError('CONNECT_FAILED', `plugin socket ${address.address} does not exist`, { cause });
  });
  if (!stats.isSocket()) {
    throw new GatehouseError('CONNECT_FAILED', `plugin address ${address.address} is not a socket`);
  }
  if (stats.uid !== owner) {
    throw new GatehouseError('CONNECT_FAILED', `plugin socket ${address.address} belongs to uid ${stats.uid}, not to the plugin's uid ${owner}`);
  }
}

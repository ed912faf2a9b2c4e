/**
 * go-plugin's GRPCBroker, for either side: serve extra gRPC services under an id the other side dials,
 * and dial the ids the other side serves (a plugin calling back into its host is the typical use).
 * Every brokered connection reuses the main connection's identities: this side's certificate, and the
 * peer's certificate as the only one trusted.
 *
 * Without multiplexing (go-plugin <= 1.5) each served id gets its own socket, announced to the peer in a
 * ConnInfo message on the broker stream; the multiplexed mode (go-plugin >= 1.6) is in
 * broker-multiplex.ts and plugs in through `BrokerMultiplexer`.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { Server } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { GatehouseError } from '../errors.js';
import { pinnedChannelCredentials } from '../tls/pinning.js';
import { listenAt, peerServer, serverAcceptor, type PeerTls } from './acceptor.js';
import type { ConnInfo } from './broker-protocol.js';
import { grpcJsCalls } from './call-path.js';
import { clientOn, grpcTarget, openChannel, serviceClientOn } from './channel.js';
import { checkAnnouncedAddress, MAX_UNIX_SOCKET_PATH_BYTES } from './handshake.js';
import { checkPluginService, serviceDefinition, type GeneratedServiceConstructor, type PluginService, type ServiceSource } from './service.js';
import { createServiceClient, type PluginLiveness, type ServiceClient } from './service-client.js';
import { protectSocket } from './socket-group.js';
import { WaitersById } from './waiters-by-id.js';

/** go-plugin waits 5 s for a ConnInfo; a loaded machine gets twice that by default. */
export const DEFAULT_BROKER_DIAL_TIMEOUT_MS = 10_000;
/** Announcements nobody dialed yet, kept per broker: a peer flooding ConnInfo cannot grow our memory. */
const MAX_UNDIALED_ANNOUNCEMENTS = 64;
const MAX_SERVICE_ID = 0xffff_ffff;

/** The broker stream seen from one end: the host's call, or the plugin's handler for it. */
export interface BrokerLink {
  send(info: ConnInfo): void;
  close(): void;
}

/** How a served id accepts connections and how a dial reaches one, when multiplexing replaces sockets. */
export interface BrokerMultiplexer {
  /** Starts routing connections for `id` into the server behind `inject`; knocks for it are acknowledged. */
  accept(id: number, inject: (connection: Duplex) => void): void;
  stopAccepting(id: number): void;
  /** A grpc-js target that opens a multiplexed connection to `id` (knocking first) each time it connects. */
  dialTarget(id: number): Promise<{ target: string; lastError: () => Error | undefined; close: () => void }>;
  /** A knock or its acknowledgement arrived on the broker stream. */
  receive(info: ConnInfo): void;
  close(): void;
}

export interface BrokerSettings {
  /** Both sides' certificates, as the main connection uses them; undefined only for plaintext by name. */
  tls: PeerTls | undefined;
  /**
   * The directory for the sockets of the services this side serves, made on first use: one only this side
   * can change (0700, 0710 for the socket group), never one the peer can write.
   */
  socketDir: () => Promise<string>;
  /** PLUGIN_UNIX_SOCKET_GROUP's gid: served sockets are then 0660 for that group instead of 0600. */
  socketGroup?: number;
  maxMessageBytes: number;
  channelOptions: grpc.ChannelOptions;
  serverOptions: grpc.ServerOptions;
  /**
   * Checks an address the peer announced before anything connects to it, giving up at `deadline` (ms since
   * the epoch): what to connect to instead (the same address, or a link of this side's), and what to call
   * once that connection has closed.
   */
  checkAddress: (network: 'unix' | 'tcp', address: string, deadline: number) => Promise<{ address: string; release(): Promise<void> }>;
  /** Lets brokered clients report PLUGIN_EXITED on the host side. */
  liveness: PluginLiveness;
  dialTimeoutMs: number;
  multiplexer?: BrokerMultiplexer;
  /** A peer dialed a service this side serves under `id` and refused this side's certificate. */
  onCertificateRefused?: (id: number, error: Error) => void;
  /** Whether the peer is a plugin, whose streams on what this side serves are capped (peerServer). */
  peerIsPlugin: boolean;
}

export interface DialOptions {
  /** How long to wait for the peer's announcement and the connection (default 10 s). */
  timeoutMs?: number;
}

interface Served {
  server: grpc.Server;
  acceptor: Server;
  socketPath?: string;
}

interface Waiter {
  resolve: (info: ConnInfo) => void;
  reject: (error: GatehouseError) => void;
}

function brokerError(message: string, cause?: unknown): GatehouseError {
  return new GatehouseError('BROKER_FAILED', message, cause === undefined ? undefined : { cause });
}

function checkServiceId(id: unknown): number {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > MAX_SERVICE_ID) {
    throw new GatehouseError('INVALID_OPTIONS', `a broker id is an integer from 0 to ${MAX_SERVICE_ID}`);
  }
  return id;
}

/** A connection to a service the peer serves through the broker. */
export class BrokerConnection {
  constructor(
    readonly id: number,
    readonly channel: grpc.Channel,
    private readonly liveness: PluginLiveness,
    private readonly onClose: () => void,
  ) {}

  /** A promise-based client for one of the brokered services, typed as plugin.client() types it. */
  client<D extends grpc.ServiceDefinition, G>(service: GeneratedServiceConstructor<D, G>): ServiceClient<D, G>;
  client<D extends grpc.ServiceDefinition>(service: ServiceSource<D>): ServiceClient<D>;
  client<D extends grpc.ServiceDefinition>(service: ServiceSource<D>): ServiceClient<D> {
    return createServiceClient(grpcJsCalls(clientOn(this.channel)), serviceDefinition(service, 'BrokerConnection.client()'), this.liveness);
  }

  /** A plain grpc-js client on this connection, for streaming methods; typed as the generated client when given one. */
  grpcClient<G extends grpc.Client>(service: GeneratedServiceConstructor<grpc.ServiceDefinition, G>, serviceName?: string): G;
  grpcClient(service: ServiceSource<grpc.ServiceDefinition>, serviceName?: string): InstanceType<grpc.ServiceClientConstructor>;
  grpcClient(service: ServiceSource<grpc.ServiceDefinition>, serviceName = 'BrokeredService'): InstanceType<grpc.ServiceClientConstructor> {
    return serviceClientOn(this.channel, serviceDefinition(service, 'BrokerConnection.grpcClient()'), serviceName);
  }

  close(): void {
    this.channel.close();
    this.onClose();
  }
}

/** go-plugin's GRPCBroker, as callers on either side see it. */
export interface Broker {
  /** A fresh id to serve under, as go-plugin's NextId (each side counts on its own). */
  nextId(): number;
  /**
   * Serves these services under an id (a fresh one unless given) and announces them to the peer;
   * resolves with the id once connections are accepted, for the caller to pass to the peer.
   */
  serve(services: readonly PluginService[]): Promise<number>;
  serve(id: number, services: readonly PluginService[]): Promise<number>;
  /** Stops serving an id: its server closes its connections and its socket is removed. */
  stopServing(id: number): Promise<void>;
  /** Connects to a service the peer serves under `id`, with the pinned certificates, once it is ready. */
  dial(id: number, options?: DialOptions): Promise<BrokerConnection>;
}

export class GrpcBroker implements Broker {
  private lastId = 0;
  private link: BrokerLink | undefined;
  private readonly outbox: ConnInfo[] = [];
  /** Set once no broker stream can come any more (the peer has no broker, or it went away for good). */
  private failure: GatehouseError | undefined;
  private closed = false;
  private readonly undialed = new Map<number, ConnInfo>();
  private readonly waiting = new WaitersById<Waiter>();
  private readonly served = new Map<number, Served>();
  private readonly connections = new Set<BrokerConnection>();

  constructor(private readonly settings: BrokerSettings) {}

  /** @internal How many ids have dials waiting for the peer's announcement. */
  get waitingIds(): number {
    return this.waiting.size;
  }

  nextId(): number {
    this.lastId = this.lastId >= MAX_SERVICE_ID ? 1 : this.lastId + 1;
    return this.lastId;
  }

  serve(services: readonly PluginService[]): Promise<number>;
  serve(id: number, services: readonly PluginService[]): Promise<number>;
  async serve(idOrServices: number | readonly PluginService[], maybeServices?: readonly PluginService[]): Promise<number> {
    const id = typeof idOrServices === 'number' ? checkServiceId(idOrServices) : this.nextId();
    const given = typeof idOrServices === 'number' ? maybeServices : idOrServices;
    if (!Array.isArray(given) || given.length === 0) {
      throw new GatehouseError('INVALID_OPTIONS', 'broker.serve needs at least one service');
    }
    const services = given.map((service: unknown, i) => checkPluginService(service, `broker.serve() services[${i}]`));
    this.throwIfUnusable();
    if (this.served.has(id)) throw new GatehouseError('INVALID_OPTIONS', `broker id ${id} is already served`);

    const { tls } = this.settings;
    const server = peerServer(this.settings.serverOptions, this.settings.maxMessageBytes, this.settings.peerIsPlugin);
    for (const service of services) server.addService(service.definition, service.implementation as grpc.UntypedServiceImplementation);
    // Only the peer's own certificate may call what we serve, as on the main connection.
    const { onCertificateRefused } = this.settings;
    const acceptor = serverAcceptor(server, tls, onCertificateRefused && ((error) => onCertificateRefused(id, error)));
    const entry: Served = { server, acceptor };
    this.served.set(id, entry);

    const { multiplexer } = this.settings;
    if (multiplexer) {
      multiplexer.accept(id, (connection) => acceptor.emit('connection', connection));
      return id;
    }
    // A private directory and a 0600 socket (0660 for the socket group): no other user can connect to,
    // or replace, what we serve.
    let socketPath: string;
    try {
      socketPath = join(await this.settings.socketDir(), `broker-${id}-${randomBytes(4).toString('hex')}.sock`);
    } catch (cause) {
      await this.stopServing(id);
      throw brokerError(`cannot make a directory for broker id ${id}'s socket`, cause);
    }
    if (Buffer.byteLength(socketPath) > MAX_UNIX_SOCKET_PATH_BYTES) {
      await this.stopServing(id);
      throw brokerError(`broker socket path is longer than ${MAX_UNIX_SOCKET_PATH_BYTES} bytes: ${socketPath}`);
    }
    entry.socketPath = socketPath;
    try {
      // Attack: a socket swapped for a link between the bind and the chmod below, which would follow it to
      // any file. The directory is this side's alone (see socketDir), so nothing in it can be swapped.
      await listenAt(acceptor, { path: socketPath });
      await protectSocket(socketPath, this.settings.socketGroup);
    } catch (cause) {
      await this.stopServing(id);
      throw brokerError(`cannot listen for broker id ${id} on ${socketPath}`, cause);
    }
    if (this.served.get(id) !== entry) throw brokerError(`broker id ${id} was stopped while it started`);
    this.send({ serviceId: id, network: 'unix', address: socketPath });
    return id;
  }

  async stopServing(id: number): Promise<void> {
    const entry = this.served.get(id);
    if (entry === undefined) return;
    this.served.delete(id);
    this.settings.multiplexer?.stopAccepting(id);
    entry.acceptor.close();
    entry.server.forceShutdown();
    if (entry.socketPath !== undefined) await rm(entry.socketPath, { force: true });
  }

  async dial(id: number, options: DialOptions = {}): Promise<BrokerConnection> {
    checkServiceId(id);
    this.throwIfUnusable();
    const timeoutMs = options.timeoutMs ?? this.settings.dialTimeoutMs;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new GatehouseError('INVALID_OPTIONS', 'dial timeoutMs must be a positive number');
    }
    const deadline = Date.now() + timeoutMs;

    let target: string;
    let lastError: () => Error | undefined = () => undefined;
    let closeTarget: () => void = () => {};
    const { multiplexer } = this.settings;
    if (multiplexer) {
      ({ target, lastError, close: closeTarget } = await multiplexer.dialTarget(id));
    } else {
      const info = await this.announcement(id, timeoutMs);
      try {
        const network = checkAnnouncedAddress(info.network, info.address);
        const checked = await this.settings.checkAddress(network, info.address, deadline);
        target = grpcTarget({ network, address: checked.address });
        closeTarget = () => void checked.release();
      } catch (cause) {
        // The address comes from the peer: refused before any connection, as in the handshake line.
        throw brokerError(`broker id ${id}: the peer announced an address gatehouse refuses: ${(cause as Error).message}`, cause);
      }
    }

    const { tls } = this.settings;
    let mismatch: GatehouseError | undefined;
    const credentials = tls
      ? pinnedChannelCredentials(tls.own, tls.peerCertificateDer, (error) => (mismatch = error))
      : grpc.credentials.createInsecure();
    const channel = openChannel(target, credentials, this.settings.maxMessageBytes, this.settings.channelOptions);
    const connection = new BrokerConnection(id, channel, this.settings.liveness, () => {
      this.connections.delete(connection);
      closeTarget();
    });
    this.connections.add(connection);
    try {
      await waitForReady(channel, deadline);
    } catch (cause) {
      connection.close();
      throw mismatch ?? lastError() ?? brokerError(`broker id ${id}: ${(cause as Error).message}`, cause);
    }
    return connection;
  }

  /** The broker stream is up: messages queued while it was not are sent now. */
  attach(link: BrokerLink): void {
    if (this.closed) {
      link.close();
      return;
    }
    this.link = link;
    for (const info of this.outbox.splice(0)) link.send(info);
  }

  /** The broker stream ended; with `failure`, no other one can come and everything waiting fails. */
  detach(link: BrokerLink, failure?: GatehouseError): void {
    if (this.link === link) this.link = undefined;
    if (failure === undefined || this.failure !== undefined) return;
    this.failure = failure;
    this.rejectWaiting(failure);
  }

  /** A message from the peer. */
  receive(info: ConnInfo): void {
    if (info.knock !== undefined) {
      this.settings.multiplexer?.receive(info);
      return;
    }
    const waiter = this.waiting.take(info.serviceId);
    if (waiter !== undefined) {
      waiter.resolve(info);
      return;
    }
    this.undialed.delete(info.serviceId);
    if (this.undialed.size >= MAX_UNDIALED_ANNOUNCEMENTS) {
      const oldest = this.undialed.keys().next();
      if (oldest.done !== true) this.undialed.delete(oldest.value);
    }
    this.undialed.set(info.serviceId, info);
  }

  /** Sends a message to the peer now, or as soon as the broker stream is up. */
  send(info: ConnInfo): void {
    if (this.link) this.link.send(info);
    else this.outbox.push(info);
  }

  /** Stops every brokered server and connection and ends the broker stream. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.link?.close();
    this.link = undefined;
    this.rejectWaiting(brokerError('the broker is closed'));
    for (const connection of [...this.connections]) connection.close();
    this.settings.multiplexer?.close();
    await Promise.all([...this.served.keys()].map((id) => this.stopServing(id)));
  }

  private throwIfUnusable(): void {
    if (this.closed) throw brokerError('the broker is closed');
    if (this.failure !== undefined) throw this.failure;
  }

  /** The peer's ConnInfo for `id`: already received, or the next one to arrive before the deadline. */
  private announcement(id: number, timeoutMs: number): Promise<ConnInfo> {
    const ready = this.undialed.get(id);
    if (ready !== undefined) {
      this.undialed.delete(id);
      return Promise.resolve(ready);
    }
    return new Promise<ConnInfo>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (info) => {
          clearTimeout(timer);
          resolve(info);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        // Attack: a peer handing out ever new ids it never announces; a dial that gives up keeps nothing.
        this.waiting.remove(id, waiter);
        reject(brokerError(`broker id ${id}: the peer announced no connection within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.add(id, waiter);
    });
  }

  private rejectWaiting(error: GatehouseError): void {
    for (const waiter of this.waiting.takeAll()) waiter.reject(error);
  }
}

/** Resolves once the channel is connected (TLS done, pin checked); fails at the first failed attempt. */
function waitForReady(channel: grpc.Channel, deadline: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const state = channel.getConnectivityState(true);
      if (state === grpc.connectivityState.READY) return resolve();
      if (state === grpc.connectivityState.TRANSIENT_FAILURE || state === grpc.connectivityState.SHUTDOWN) {
        return reject(new Error('the connection failed'));
      }
      channel.watchConnectivityState(state, deadline, (error) =>
        error ? reject(new Error('no connection before the deadline')) : check(),
      );
    };
    check();
  });
}

import * as grpc from '@grpc/grpc-js';
import type { AuditLog } from '../audit/index.js';
import { GatehouseError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Broker } from '../transport/broker.js';
import { controllerService } from '../transport/controller.js';
import type { ExitStatus } from '../transport/exit-status.js';
import { createServiceClient, type PluginLiveness } from '../transport/service-client.js';
import type { ServiceClient } from '../transport/service-client-types.js';
import { checkHealth, type PluginConnection } from './connection.js';
import { trackPlugin, untrackPlugin, type LivePlugin } from './live-plugins.js';
import type { PluginStderr } from './plugin-output.js';
import { describeExit, exitsWithin, SIGKILL_WAIT_MS, type PluginProcess } from './plugin-process.js';
import { PluginSession, type SessionSpec } from './plugin-session.js';
import { createReattachRecord, type ReattachRecord, type ReattachRecordOptions } from './reattach-record.js';
import { serviceDefinition, type GeneratedServiceConstructor, type ServiceSource } from '../transport/service.js';
import { removeSocketDir } from './socket-dir.js';

/** How long a broken call waits for the exit it suggests, to report PLUGIN_EXITED rather than UNAVAILABLE. */
const EXIT_SETTLE_MS = 200;
/** How long the channel of an exited plugin may read what the plugin sent last before its socket is destroyed. */
const PEER_GONE_WAIT_MS = 200;

export interface PluginInfo {
  readonly name: string;
  readonly protocolVersion: number;
  readonly network: 'unix' | 'tcp';
  readonly address: string;
  /** SHA-256 of the plugin's pinned certificate, or undefined for a plaintext plugin. */
  readonly certificateSha256: string | undefined;
}

/**
 * A running plugin: typed clients over one pinned connection, and its lifecycle. Dispose it (or call
 * `kill()`) when done; `await using plugin = await launch(...)` does that for you.
 */
export class Plugin implements PluginInfo, AsyncDisposable {
  readonly name: string;
  readonly protocolVersion: number;
  readonly network: 'unix' | 'tcp';
  readonly address: string;
  readonly certificateSha256: string | undefined;
  readonly socketDir: string;
  /** Settles when the plugin process has exited, whoever stopped it. */
  readonly exited: Promise<ExitStatus>;
  private readonly liveness: PluginLiveness;
  private readonly session: PluginSession;
  private readonly clients = new WeakMap<object, unknown>();
  private stopping: Promise<ExitStatus> | undefined;
  private released: Promise<void> | undefined;
  /** What the exit hook needs, kept off the public surface: a host's own code has no business writing the exit's audit record. */
  private readonly live: LivePlugin;

  constructor(
    info: PluginInfo,
    // A reattached plugin's stderr went to the host that launched it: then there is none to quote.
    private readonly child: Pick<PluginProcess, 'pid' | 'exited' | 'hasExited' | 'signal'> & { readonly stderr?: PluginStderr },
    // Every call to the plugin, on one socket unless the caller set grpc-js channel options.
    private readonly connection: PluginConnection,
    socketDir: string,
    private readonly killGraceMs: number,
    private readonly logger: Logger,
    private readonly audit: AuditLog | undefined,
    // The session logs as this plugin: its logger and name come from here, not twice from the caller.
    session: Omit<SessionSpec, 'logger' | 'pluginName'>,
  ) {
    this.name = info.name;
    this.protocolVersion = info.protocolVersion;
    this.network = info.network;
    this.address = info.address;
    this.certificateSha256 = info.certificateSha256;
    this.socketDir = socketDir;
    this.exited = child.exited;
    // Every PLUGIN_EXITED carries what the plugin wrote last, and says the line that names its error.
    const exit = (status: ExitStatus | undefined) =>
      status === undefined
        ? undefined
        : { status, reason: describeExit(status) + (child.stderr?.said() ?? ''), stderrTail: child.stderr?.lastLines() ?? [] };
    this.liveness = {
      exit: () => exit(child.hasExited),
      settleExit: async () => {
        const timer = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), EXIT_SETTLE_MS).unref());
        return exit(await Promise.race([child.exited, timer]));
      },
    };
    this.session = new PluginSession({ ...session, logger, pluginName: info.name }, connection.calls, this.liveness);
    this.live = {
      pid: this.pid,
      socketDir,
      pluginUid: this.pluginUid,
      kill: () => this.kill(),
      // Just before the exit hook SIGKILLs the plugin: an auditor must see why it ended.
      recordHostExit: () => this.audit?.recordAtExit?.({ type: 'kill', plugin: this.name, pid: this.pid, method: 'SIGKILL', reason: 'host exiting' }),
    };
    trackPlugin(this.live);
    void child.exited.then((status) => {
      // Whether the host had asked it to stop: without it, an auditor could tell a crash or an outside kill from a
      // stop only by searching back for a kill record of that pid.
      this.audit?.record({ type: 'exit', plugin: this.name, pid: this.pid, code: status.code, signal: status.signal, stoppedByHost: this.stopping !== undefined });
      if (this.stopping === undefined) {
        // At warn with its last words: a crash's stack is why it exited, not debug chatter.
        const stderrTail = child.stderr?.readableLines() ?? [];
        this.logger.warn(
          { plugin: this.name, ...status, ...(stderrTail.length > 0 ? { stderrTail } : {}) },
          `plugin exited unexpectedly (${describeExit(status)}${child.stderr?.said() ?? ''})`,
        );
      }
      return this.release();
    });
  }

  get pid(): number {
    return this.child.pid;
  }

  /** The user the plugin runs as, if the host knows it: its directory is removed with that user's rights. */
  private get pluginUid(): number | undefined {
    return this.session.reattachFacts().pluginUid;
  }

  /**
   * A typed client for one of the plugin's services, on the plugin's pinned connection: pass the
   * definition your generator made (ts-proto's `XxxService`, protobuf-es through `protobufEsService()`)
   * or proto-loader-gen-types' `proto.pkg.Service`, which also types the streaming methods.
   */
  client<D extends grpc.ServiceDefinition, G>(service: GeneratedServiceConstructor<D, G>): ServiceClient<D, G>;
  client<D extends grpc.ServiceDefinition>(service: ServiceSource<D>): ServiceClient<D>;
  client<D extends grpc.ServiceDefinition>(service: ServiceSource<D>): ServiceClient<D> {
    // One client per service: hosts that ask for it per request (a server, say) pay the checks once.
    const known = this.clients.get(service);
    if (known !== undefined) return known as ServiceClient<D>;
    const definition = serviceDefinition(service, 'plugin.client()');
    this.session.checkOffered(definition);
    const client = createServiceClient(this.connection.calls, definition, this.liveness, this.protocolVersion);
    this.clients.set(service, client);
    return client;
  }

  /** The last lines the plugin wrote on stderr (at most 20, oldest first), to explain a crash. */
  stderrTail(): string[] {
    return this.session.stderrTail();
  }

  /** go-plugin's health check (service `plugin`): HEALTH_CHECK_FAILED unless it answers SERVING within `timeoutMs`. */
  checkHealth(timeoutMs: number): Promise<void> {
    return checkHealth(this.connection.calls, timeoutMs);
  }

  /** go-plugin's broker: serve services for the plugin to dial (callbacks), and dial the ones it serves. */
  get broker(): Broker {
    return this.session.broker;
  }

  /** go-plugin's ReattachConfig: what reattach() needs to reconnect to this plugin while it runs. */
  reattachRecord(options?: ReattachRecordOptions): Promise<ReattachRecord> {
    const { name, pid, network, address, protocolVersion, socketDir } = this;
    return createReattachRecord({ name, pid, network, address, protocolVersion, socketDir, ...this.session.reattachFacts() }, options);
  }

  /**
   * A plain grpc-js client, for client and bidi streaming and full control, pinned as every other
   * call; typed as the generated client when given proto-loader-gen-types' `proto.pkg.Service`. Its
   * channel (a second connection, unless channelOptions were set) is opened on the first request.
   */
  grpcClient<G extends grpc.Client>(service: GeneratedServiceConstructor<grpc.ServiceDefinition, G>, serviceName?: string): G;
  grpcClient(service: ServiceSource<grpc.ServiceDefinition>, serviceName?: string): InstanceType<grpc.ServiceClientConstructor>;
  grpcClient(service: ServiceSource<grpc.ServiceDefinition>, serviceName = 'PluginService'): InstanceType<grpc.ServiceClientConstructor> {
    const definition = serviceDefinition(service, 'plugin.grpcClient()');
    this.session.checkOffered(definition);
    return this.connection.grpcClient(definition, serviceName);
  }

  /**
   * Stops the plugin: go-plugin's Shutdown over the controller, then SIGTERM, then SIGKILL, each
   * after `killGraceMs`; every signal goes to the plugin's whole process group.
   */
  kill(): Promise<ExitStatus> {
    this.stopping ??= this.stop();
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }

  private async stop(): Promise<ExitStatus> {
    // Ends the broker stream before Shutdown, as a go-plugin host does: nothing brokered outlives the stop.
    await this.session.close();
    if (this.child.hasExited === undefined) {
      const deadline = Date.now() + this.killGraceMs;
      this.audit?.record({ type: 'kill', plugin: this.name, pid: this.pid, method: 'shutdown' });
      await this.connection.calls.unary(controllerService.Shutdown, {}, { timeoutMs: this.killGraceMs }).catch(() => {});
      if (!(await exitsWithin(this.child, deadline - Date.now()))) {
        this.logger.debug({ plugin: this.name }, 'plugin ignored Shutdown; sending SIGTERM');
        this.audit?.record({ type: 'kill', plugin: this.name, pid: this.pid, method: 'SIGTERM' });
        this.child.signal('SIGTERM');
        if (!(await exitsWithin(this.child, this.killGraceMs))) {
          this.logger.warn({ plugin: this.name }, 'plugin ignored SIGTERM; sending SIGKILL');
          this.audit?.record({ type: 'kill', plugin: this.name, pid: this.pid, method: 'SIGKILL' });
          this.child.signal('SIGKILL');
          if (!(await exitsWithin(this.child, SIGKILL_WAIT_MS))) {
            throw new GatehouseError('KILL_FAILED', `plugin ${this.name} (pid ${this.pid}) survived SIGKILL`);
          }
        }
      }
    }
    const status = await this.child.exited;
    await this.release();
    return status;
  }

  /** Once the plugin has exited: no channel, no leftover children, no socket directory. */
  private release(): Promise<void> {
    this.released ??= (async () => {
      await this.session.release();
      // Children that outlived the plugin would be orphans; the group id stays ours while any remain.
      // Killing them first also closes any copy of the plugin's socket they inherited.
      try {
        process.kill(-this.pid, 'SIGKILL');
      } catch {
        // the group is empty
      }
      await this.connection.closeAfterPeerGone(PEER_GONE_WAIT_MS);
      const leftInPlace = await removeSocketDir(this.socketDir, this.pluginUid);
      if (leftInPlace !== undefined) this.logger.warn({ plugin: this.name }, `socket directory not removed: ${leftInPlace}`);
      untrackPlugin(this.live);
    })();
    return this.released;
  }
}



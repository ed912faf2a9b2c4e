import * as grpc from '@grpc/grpc-js';
import { GatehouseError } from '../errors.js';
import type { ExitStatus } from './exit-status.js';
import { cancelOnAbort, type CallPath, type Method } from './call-path.js';
import { GrpcStatusError, MessageSizeError } from './grpc-call-protocol.js';
import { peerText } from './peer-text.js';
import type { CallOptions, ServiceClient } from './service-client-types.js';

export type { CallOptions, ServiceClient } from './service-client-types.js';

/** What a client needs to know about the plugin behind it, to fail fast once it has gone. */
export interface PluginExit {
  status: ExitStatus;
  reason: string;
  /** The plugin's last stderr lines, for the error's details. */
  stderrTail: readonly string[];
}

export interface PluginLiveness {
  /** Set once the plugin process has exited; reported in call errors. */
  exit(): PluginExit | undefined;
  /** Waits briefly for an exit that a broken connection suggests is under way. */
  settleExit(): Promise<PluginExit | undefined>;
}

/** A typed client whose calls take `calls` (a plugin's lean connection, or a grpc-js channel). */
export function createServiceClient<D extends grpc.ServiceDefinition, G = unknown>(
  calls: CallPath,
  definition: D,
  liveness: PluginLiveness,
  /** The application protocol version the plugin chose, for the diagnosis of a method it does not serve. */
  protocolVersion?: number,
): ServiceClient<D, G> {
  const methods: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition) as [string, Method][]) {
    const methodCalls = new MethodCalls(calls, method, liveness, protocolVersion);
    if (method.requestStream) {
      methods[name] = () =>
        Promise.reject(
          new GatehouseError(
            'INVALID_OPTIONS',
            `${methodCalls.methodName} is a ${method.responseStream ? 'bidi' : 'client'}-streaming method: use plugin.grpcClient() for it`,
          ),
        );
    } else if (method.responseStream) {
      methods[name] = (request: unknown, options?: CallOptions) => methodCalls.serverStream(request, options ?? {});
    } else {
      methods[name] = (request: unknown, options?: CallOptions) => methodCalls.unary(request, options ?? {});
    }
  }
  return methods as ServiceClient<D, G>;
}

/** Calls of one method, with the plugin's liveness, and failures as GatehouseErrors. */
class MethodCalls {
  readonly methodName: string;

  constructor(
    private readonly calls: CallPath,
    private readonly method: Method,
    private readonly liveness: PluginLiveness,
    private readonly protocolVersion: number | undefined,
  ) {
    this.methodName = method.path.replace(/^\//, '');
  }

  async unary(request: unknown, options: CallOptions): Promise<unknown> {
    this.checkStart(options);
    try {
      return await this.calls.unary(this.method, request, options);
    } catch (cause) {
      throw await this.failure(cause as grpc.ServiceError, options);
    }
  }

  async *serverStream(request: unknown, options: CallOptions): AsyncGenerator<unknown, void, undefined> {
    this.checkStart(options);
    const call = this.calls.serverStream(this.method, request, options);
    const stopWatching = cancelOnAbort(call, options.signal);
    try {
      for await (const response of call as AsyncIterable<unknown>) yield response;
    } catch (cause) {
      throw await this.failure(cause as grpc.ServiceError, options);
    } finally {
      // A `break` (or an error in the caller's loop) lands here: the plugin must stop sending.
      stopWatching();
      call.cancel();
    }
  }

  private checkStart(options: CallOptions): void {
    const before = this.liveness.exit();
    if (before !== undefined) {
      throw new GatehouseError('PLUGIN_EXITED', `${this.methodName}: the plugin has exited (${before.reason})`, {
        details: { exitStatus: before.status, stderrTail: before.stderrTail },
      });
    }
    if (options.signal?.aborted) throw this.aborted(options.signal);
  }

  private async failure(error: grpc.ServiceError, options: CallOptions): Promise<GatehouseError> {
    if (options.signal?.aborted) return this.aborted(options.signal, error);
    if (error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.CANCELLED) {
      const exit = await this.liveness.settleExit();
      if (exit !== undefined) {
        return new GatehouseError('PLUGIN_EXITED', `${this.methodName}: the plugin exited (${exit.reason})`, {
          cause: error,
          details: { exitStatus: exit.status, stderrTail: exit.stderrTail },
        });
      }
    }
    return callFailed(this.methodName, error, options.timeoutMs, this.protocolVersion);
  }

  private aborted(signal: AbortSignal, cause?: unknown): GatehouseError {
    return new GatehouseError('CALL_ABORTED', `${this.methodName} was cancelled by the caller's AbortSignal`, {
      cause: cause ?? signal.reason,
    });
  }
}

function callFailed(path: string, cause: grpc.ServiceError, timeoutMs: number | undefined, protocolVersion: number | undefined): GatehouseError {
  const statusName = grpc.status[cause.code] ?? String(cause.code);
  return new GatehouseError('CALL_FAILED', `${path} failed: ${statusName}: ${peerText(cause.details)}${hint(cause, timeoutMs, protocolVersion)}`, {
    cause,
    details: { grpcCode: cause.code },
  });
}

/** What the status alone does not tell the reader: which setting to look at. */
function hint(cause: grpc.ServiceError, timeoutMs: number | undefined, protocolVersion: number | undefined): string {
  // A plugin serves the services of the version it chose (go-plugin's VersionedPlugins): "unknown service" alone
  // does not say that, nor that a package or service name that differs from the plugin's .proto is the same miss.
  if (cause.code === grpc.status.UNIMPLEMENTED) {
    const at = protocolVersion === undefined ? '' : ` at protocol version ${protocolVersion}, the one it chose`;
    return `: the ${protocolVersion === undefined ? 'peer' : 'plugin'} does not serve it${at}: check the service's package and name against the plugin's .proto, and the versions each side offers`;
  }
  if (cause.code === grpc.status.RESOURCE_EXHAUSTED && /larger than/.test(cause.details)) {
    // "larger than max" alone does not say whose limit it was, and the fix is a setting on that side.
    if (cause instanceof MessageSizeError) {
      const what = cause.direction === 'sent' ? `the request (${cause.length} bytes)` : `the plugin's response (${cause.length} bytes)`;
      return `: ${what} is over this host's maxMessageBytes (${cause.limit}, launch()): raise it there${cause.direction === 'sent' ? ", and the plugin's own limit with it" : ''}`;
    }
    if (cause instanceof GrpcStatusError && cause.fromPeer) {
      return ": the plugin refused a message over its own size limit: raise it in the plugin (serve({ maxMessageBytes }) for a gatehouse plugin, grpc.MaxRecvMsgSize in a Go plugin's GRPCServer)";
    }
    // grpc-js (a brokered connection) makes the same status for its own limit and passes on the peer's.
    return ': over a message size limit; raise maxMessageBytes on the side that refused it (launch() for the host, serve() for a gatehouse plugin)';
  }
  // "deadline exceeded" does not say whose deadline: a plugin may pass on one of its own.
  if (cause.code === grpc.status.DEADLINE_EXCEEDED && timeoutMs !== undefined) {
    return `: the plugin did not answer within the call's deadline (timeoutMs, or a supervisor's callTimeoutMs: ${timeoutMs} ms); it may be hung or slow: raise the deadline, or find out what the plugin waits for`;
  }
  return '';
}

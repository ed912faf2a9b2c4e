import * as grpc from '@grpc/grpc-js';
import { GatehouseError } from '../errors.js';
import type { ExitStatus } from './exit-status.js';
import type { UnaryCallOptions, UnaryClient } from './grpc-unary-client.js';
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

type Method = grpc.MethodDefinition<unknown, unknown>;

/**
 * `unary`, when given, carries the unary calls (the plugin's own connection: node:http2 directly, about
 * half grpc-js's host CPU per call); streams, and every call of a brokered connection, go through `client`.
 */
export function createServiceClient<D extends grpc.ServiceDefinition, G = unknown>(
  client: grpc.Client,
  definition: D,
  liveness: PluginLiveness,
  unary?: UnaryClient,
): ServiceClient<D, G> {
  const methods: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition) as [string, Method][]) {
    const calls = new MethodCalls(client, method, liveness, unary);
    if (method.requestStream) {
      methods[name] = () =>
        Promise.reject(
          new GatehouseError(
            'INVALID_OPTIONS',
            `${calls.methodName} is a ${method.responseStream ? 'bidi' : 'client'}-streaming method: use plugin.grpcClient() for it`,
          ),
        );
    } else if (method.responseStream) {
      methods[name] = (request: unknown, options?: CallOptions) => calls.serverStream(request, options ?? {});
    } else {
      methods[name] = (request: unknown, options?: CallOptions) => calls.unary(request, options ?? {});
    }
  }
  return methods as ServiceClient<D, G>;
}

/** Calls of one method, with the plugin's liveness and the caller's options turned into grpc-js terms. */
class MethodCalls {
  readonly methodName: string;

  constructor(
    private readonly client: grpc.Client,
    private readonly method: Method,
    private readonly liveness: PluginLiveness,
    private readonly lean: UnaryClient | undefined,
  ) {
    this.methodName = method.path.replace(/^\//, '');
  }

  async unary(request: unknown, options: CallOptions): Promise<unknown> {
    this.checkStart(options);
    const { path, requestSerialize, responseDeserialize } = this.method;
    try {
      if (this.lean) {
        const response = await this.lean.call(path, requestSerialize(request), leanCallOptions(options));
        return responseDeserialize(response.message);
      }
      let stopWatching = (): void => {};
      try {
        return await new Promise((resolve, reject) => {
          const call = this.client.makeUnaryRequest(
            path,
            requestSerialize,
            responseDeserialize,
            request,
            options.metadata ?? new grpc.Metadata(),
            this.grpcOptions(options),
            (error, response) => (error ? reject(error) : resolve(response)),
          );
          stopWatching = cancelOnAbort(call, options.signal);
        });
      } finally {
        // A signal shared by many calls must not collect one listener per finished call.
        stopWatching();
      }
    } catch (cause) {
      throw await this.failure(cause as grpc.ServiceError, options);
    }
  }

  async *serverStream(request: unknown, options: CallOptions): AsyncGenerator<unknown, void, undefined> {
    this.checkStart(options);
    const { path, requestSerialize, responseDeserialize } = this.method;
    const call = this.client.makeServerStreamRequest(
      path,
      requestSerialize,
      responseDeserialize,
      request,
      options.metadata ?? new grpc.Metadata(),
      this.grpcOptions(options),
    );
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

  /** The call's deadline (ms since the epoch), in the shape both clients take. */
  private grpcOptions(options: CallOptions): { deadline?: number } {
    return options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs };
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
    return callFailed(this.methodName, error);
  }

  private aborted(signal: AbortSignal, cause?: unknown): GatehouseError {
    return new GatehouseError('CALL_ABORTED', `${this.methodName} was cancelled by the caller's AbortSignal`, {
      cause: cause ?? signal.reason,
    });
  }
}

const NO_OPTIONS: UnaryCallOptions = {};

/** The caller's options in the lean client's terms; most calls have none, and allocate nothing for them. */
function leanCallOptions(options: CallOptions): UnaryCallOptions {
  if (options.timeoutMs === undefined && options.signal === undefined && options.metadata === undefined) return NO_OPTIONS;
  return {
    ...(options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs }),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.metadata ? { metadata: metadataPairs(options.metadata) } : {}),
  };
}

/** Every value of every key, as grpc-js sends them (getMap() would keep only the first of each). */
function metadataPairs(metadata: grpc.Metadata): [string, grpc.MetadataValue][] {
  return Object.entries(metadata.toJSON()).flatMap(([key, values]) => values.map((value): [string, grpc.MetadataValue] => [key, value]));
}

/** Cancels the call when the signal fires; returns what stops watching it. */
function cancelOnAbort(call: { cancel(): void }, signal: AbortSignal | undefined): () => void {
  if (signal === undefined) return () => {};
  const cancel = (): void => call.cancel();
  signal.addEventListener('abort', cancel, { once: true });
  return () => signal.removeEventListener('abort', cancel);
}

function callFailed(path: string, cause: grpc.ServiceError): GatehouseError {
  const statusName = grpc.status[cause.code] ?? String(cause.code);
  // grpc-js says only "larger than"; the fix is a setting on one side or the other.
  const hint =
    cause.code === grpc.status.RESOURCE_EXHAUSTED && /larger than/.test(cause.details)
      ? ': over a message size limit; raise maxMessageBytes on the side that refused it (launch() for the host, serve() for a gatehouse plugin)'
      : '';
  return new GatehouseError('CALL_FAILED', `${path} failed: ${statusName}: ${cause.details}${hint}`, {
    cause,
    details: { grpcCode: cause.code },
  });
}

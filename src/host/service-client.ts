import * as grpc from '@grpc/grpc-js';
import { GatehouseError } from '../errors.js';
import type { ExitStatus } from './plugin-process.js';

export interface CallOptions {
  /** Fails the call with CALL_FAILED (DEADLINE_EXCEEDED) after this many milliseconds. */
  timeoutMs?: number;
  metadata?: grpc.Metadata;
}

/**
 * A promise-based client for a service the caller brings (from its own .proto, through
 * @grpc/proto-loader or generated code). Unary methods return promises; errors are GatehouseErrors.
 */
export type ServiceClient<D extends grpc.ServiceDefinition> = {
  [K in keyof D]: D[K] extends grpc.MethodDefinition<infer Req, infer Res>
    ? (request: Req, options?: CallOptions) => Promise<Res>
    : never;
};

/** What a client needs to know about the plugin behind it, to fail fast once it has gone. */
export interface PluginExit {
  status: ExitStatus;
  reason: string;
}

export interface PluginLiveness {
  /** Set once the plugin process has exited; reported in call errors. */
  exit(): PluginExit | undefined;
  /** Waits briefly for an exit that a broken connection suggests is under way. */
  settleExit(): Promise<PluginExit | undefined>;
}

/** How a service client sends one unary call: grpc-js (brokered connections) or the lean client (the plugin's own). */
export type UnaryInvoker = <Req, Res>(
  method: grpc.MethodDefinition<Req, Res>,
  request: Req,
  options: { deadline?: number; metadata?: grpc.Metadata },
) => Promise<Res>;

export function createServiceClient<D extends grpc.ServiceDefinition>(
  invoke: UnaryInvoker,
  definition: D,
  liveness: PluginLiveness,
): ServiceClient<D> {
  const methods: Record<string, (request: unknown, options?: CallOptions) => Promise<unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    const methodName = method.path.replace(/^\//, '');
    if (method.requestStream || method.responseStream) {
      methods[name] = () =>
        Promise.reject(
          new GatehouseError(
            'INVALID_OPTIONS',
            `${methodName} is a streaming method: use plugin.grpcClient() for streaming calls`,
          ),
        );
      continue;
    }
    methods[name] = async (request, options = {}) => {
      const before = liveness.exit();
      if (before !== undefined) {
        throw new GatehouseError('PLUGIN_EXITED', `${methodName}: the plugin has exited (${before.reason})`, {
          details: { exitStatus: before.status },
        });
      }
      try {
        return await invoke(method, request, {
          ...(options.timeoutMs !== undefined ? { deadline: Date.now() + options.timeoutMs } : {}),
          ...(options.metadata ? { metadata: options.metadata } : {}),
        });
      } catch (cause) {
        const error = cause as grpc.ServiceError;
        if (error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.CANCELLED) {
          const reason = await liveness.settleExit();
          if (reason !== undefined) {
            throw new GatehouseError('PLUGIN_EXITED', `${methodName}: the plugin exited (${reason.reason})`, {
              cause,
              details: { exitStatus: reason.status },
            });
          }
        }
        throw callFailed(methodName, error);
      }
    };
  }
  return methods as ServiceClient<D>;
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

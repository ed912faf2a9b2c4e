// The public shape of a typed client, apart from the client that carries its calls (call-path.ts: the
// lean node:http2 client on a plugin's own connection, grpc-js on brokered ones).
import type * as grpc from '@grpc/grpc-js';
import type { KnownMethodKind, MethodInput, MethodKey, MethodOutput } from './service.js';

export type { GeneratedServiceConstructor } from './service.js';

export interface CallOptions {
  /** Fails the call with CALL_FAILED (DEADLINE_EXCEEDED) after this many milliseconds. */
  timeoutMs?: number;
  /** Sent as the call's request metadata. */
  metadata?: grpc.Metadata;
  /** Cancels the call (CALL_ABORTED); for a server stream, ends the iteration with that error. */
  signal?: AbortSignal;
}

/**
 * Client and bidi streaming are not offered by `plugin.client()`; calling one is a type error that says
 * so: the request is not assignable to this parameter, whose type is the advice tsc then prints.
 */
export type StreamingUnavailable = (use: 'client and bidi streaming: use plugin.grpcClient()') => never;

/**
 * One method of a typed client. Unary methods (and those whose kind the types do not say) return a
 * promise; server-streaming methods an AsyncIterable, whose `break` cancels the stream.
 */
export type ClientMethod<M, Kind> = Kind extends 'server'
  ? (request: MethodInput<M>, options?: CallOptions) => AsyncIterable<MethodOutput<M>>
  : Kind extends 'client' | 'bidi'
    ? StreamingUnavailable
    : (request: MethodInput<M>, options?: CallOptions) => Promise<MethodOutput<M>>;

/**
 * A client for a service the caller brings, typed from the generated definition: requests take the
 * input type, responses are the output type. `G` is the generated grpc-js client interface, when known.
 * Errors are GatehouseErrors.
 */
export type ServiceClient<D extends grpc.ServiceDefinition, G = unknown> = {
  [K in keyof D as MethodKey<D, K>]: ClientMethod<D[K], KnownMethodKind<D, K, G>>;
};


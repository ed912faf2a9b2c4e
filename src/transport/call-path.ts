// The calls a host makes on a connection to a peer, apart from which client carries them: grpc-js
// (brokered connections, and plugins launched with grpc-js channel options) or the lean node:http2
// client (a plugin's own connection). Typed clients, the health check, Shutdown, the broker stream
// and the stdio stream are written once against this.
import * as grpc from '@grpc/grpc-js';
import type { Readable } from 'node:stream';
import { GrpcStatus, GrpcStatusError, type GrpcHttp2Client, type UnaryCallOptions } from './grpc-http2-client.js';
import type { CallOptions } from './service-client-types.js';

export type Method<Req = unknown, Res = unknown> = grpc.MethodDefinition<Req, Res>;

/** A call's responses as a stream; `cancel()` ends it with CANCELLED and tells the peer to stop. */
export type ResponseStream = Readable & { cancel(): void };
/** A bidi call: requests written, responses read. */
export type BidiCall<Req> = ResponseStream & { write(request: Req): boolean };

/**
 * Failures are errors with the gRPC `code` and `details` (grpc-js's ServiceError, or GrpcStatusError).
 * A unary call honours `options.signal`; a stream is cancelled by its caller (`cancelOnAbort`).
 */
export interface CallPath {
  unary<Req, Res>(method: Method<Req, Res>, request: Req, options: CallOptions): Promise<Res>;
  serverStream<Req, Res>(method: Method<Req, Res>, request: Req, options: CallOptions): ResponseStream;
  bidiStream<Req, Res>(method: Method<Req, Res>, options: CallOptions): BidiCall<Req>;
}

/** Calls through a grpc-js client (on a shared channel). */
export function grpcJsCalls(client: grpc.Client): CallPath {
  return {
    async unary(method, request, options) {
      let stopWatching = (): void => {};
      try {
        return await new Promise((resolve, reject) => {
          const call = client.makeUnaryRequest(
            method.path,
            method.requestSerialize,
            method.responseDeserialize,
            request,
            options.metadata ?? new grpc.Metadata(),
            deadlineOption(options),
            (error, response) => (error ? reject(error) : resolve(response!)),
          );
          stopWatching = cancelOnAbort(call, options.signal);
        });
      } finally {
        // A signal shared by many calls must not collect one listener per finished call.
        stopWatching();
      }
    },
    serverStream(method, request, options) {
      const { path, requestSerialize, responseDeserialize } = method;
      return client.makeServerStreamRequest(path, requestSerialize, responseDeserialize, request, options.metadata ?? new grpc.Metadata(), deadlineOption(options));
    },
    bidiStream(method, options) {
      const { path, requestSerialize, responseDeserialize } = method;
      return client.makeBidiStreamRequest(path, requestSerialize, responseDeserialize, options.metadata ?? new grpc.Metadata(), deadlineOption(options));
    },
  };
}

/** Calls through the lean node:http2 client: the whole of a plugin's connection on one socket. */
export function leanCalls(client: GrpcHttp2Client): CallPath {
  const open = <Req, Res>(method: Method<Req, Res>, options: CallOptions) =>
    client.stream(method.path, { ...leanCallOptions(options), serialize: method.requestSerialize, deserialize: method.responseDeserialize });
  return {
    unary(method, request, options) {
      return client.call(method.path, method.requestSerialize(request), leanCallOptions(options)).then((response) => {
        try {
          return method.responseDeserialize(response.message);
        } catch (error) {
          // As grpc-js reports a response it cannot decode: INTERNAL, with a code the caller can read.
          throw new GrpcStatusError(GrpcStatus.INTERNAL, `cannot decode the response: ${String(error)}`);
        }
      });
    },
    serverStream(method, request, options) {
      return open(method, options).end(request);
    },
    bidiStream: open,
  };
}

/** Cancels the call when the signal fires; returns what stops watching it. */
export function cancelOnAbort(call: { cancel(): void }, signal: AbortSignal | undefined): () => void {
  if (signal === undefined) return () => {};
  const cancel = (): void => call.cancel();
  signal.addEventListener('abort', cancel, { once: true });
  return () => signal.removeEventListener('abort', cancel);
}

/** The call's deadline in grpc-js's terms. */
function deadlineOption(options: CallOptions): grpc.CallOptions {
  return options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs };
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

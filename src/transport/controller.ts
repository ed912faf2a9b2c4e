import type * as grpc from '@grpc/grpc-js';
import { emptyCodec, unaryMethod, type Empty } from './protobuf.js';

/** go-plugin's plugin.GRPCController: the host's request for a graceful stop. */
export const controllerService = {
  Shutdown: unaryMethod('/plugin.GRPCController/Shutdown', emptyCodec, emptyCodec),
} satisfies grpc.ServiceDefinition;

/** Answers Shutdown first, then stops, so the host sees the call succeed rather than a dropped stream. */
export function controllerImplementation(onShutdown: () => void): grpc.UntypedServiceImplementation {
  const shutdown: grpc.handleUnaryCall<Empty, Empty> = (_call, callback) => {
    callback(null, {});
    setImmediate(onShutdown);
  };
  return { Shutdown: shutdown };
}

import type * as grpc from '@grpc/grpc-js';

/** A gRPC service and its handlers, as a plugin serves it or either side serves it through the broker. */
export interface PluginService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

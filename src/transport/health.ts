import * as grpc from '@grpc/grpc-js';
import { messageCodec, unaryMethod } from './protobuf.js';

/** go-plugin registers its plugin under this health service name. */
export const PLUGIN_HEALTH_SERVICE = 'plugin';

/** grpc.health.v1.HealthCheckResponse.ServingStatus */
export enum ServingStatus {
  UNKNOWN = 0,
  SERVING = 1,
  NOT_SERVING = 2,
  SERVICE_UNKNOWN = 3,
}

export interface HealthCheckRequest {
  service: string;
}
export interface HealthCheckResponse {
  status: ServingStatus;
}

const requestCodec = messageCodec<HealthCheckRequest>(
  (message, writer) => {
    if (message.service !== '') writer.uint32((1 << 3) | 2).string(message.service);
  },
  () => ({ service: '' }),
  (message, field, reader, wireType) => {
    if (field !== 1 || wireType !== 2) return false;
    message.service = reader.string();
    return true;
  },
);

const responseCodec = messageCodec<HealthCheckResponse>(
  (message, writer) => {
    if (message.status !== ServingStatus.UNKNOWN) writer.uint32((1 << 3) | 0).int32(message.status);
  },
  () => ({ status: ServingStatus.UNKNOWN }),
  (message, field, reader, wireType) => {
    if (field !== 1 || wireType !== 0) return false;
    message.status = reader.int32();
    return true;
  },
);

export const healthService = {
  Check: unaryMethod('/grpc.health.v1.Health/Check', requestCodec, responseCodec),
} satisfies grpc.ServiceDefinition;

/** Serves SERVING for the plugin (and for the whole server, ""), as the health protocol defines. */
export function healthImplementation(): grpc.UntypedServiceImplementation {
  const check: grpc.handleUnaryCall<HealthCheckRequest, HealthCheckResponse> = (call, callback) => {
    const { service } = call.request;
    if (service === PLUGIN_HEALTH_SERVICE || service === '') {
      callback(null, { status: ServingStatus.SERVING });
    } else {
      callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${JSON.stringify(service.slice(0, 64))}` });
    }
  };
  return { Check: check };
}

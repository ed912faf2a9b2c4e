// gRPC server reflection (grpc.reflection.v1alpha and v1: the same messages under two packages), as
// go-plugin >= 1.2 serves it: codecs for the parts a plugin and `gatehouse call` use.
import type * as grpc from '@grpc/grpc-js';
import { messageCodec, readBuffer, streamingMethod, type MessageCodec, type Writer } from './protobuf.js';

export type ReflectionQuery =
  | { kind: 'file_by_filename'; value: string }
  | { kind: 'file_containing_symbol'; value: string }
  | { kind: 'list_services' }
  /** Asked for, but not something a plugin answers: extensions. */
  | { kind: 'unsupported' };

export interface ReflectionRequest {
  host: string;
  query: ReflectionQuery | undefined;
}

export type ReflectionAnswer =
  | { kind: 'files'; fileDescriptorProtos: Buffer[] }
  | { kind: 'services'; names: string[] }
  | { kind: 'error'; code: number; message: string };

export interface ReflectionResponse {
  validHost: string;
  originalRequest: ReflectionRequest | undefined;
  answer: ReflectionAnswer | undefined;
}

function writeRequest(request: ReflectionRequest, writer: Writer): void {
  if (request.host !== '') writer.uint32((1 << 3) | 2).string(request.host);
  const query = request.query;
  if (query?.kind === 'file_by_filename') writer.uint32((3 << 3) | 2).string(query.value);
  else if (query?.kind === 'file_containing_symbol') writer.uint32((4 << 3) | 2).string(query.value);
  else if (query?.kind === 'list_services') writer.uint32((7 << 3) | 2).string('*');
}

export const reflectionRequestCodec: MessageCodec<ReflectionRequest> = messageCodec<ReflectionRequest>(
  writeRequest,
  () => ({ host: '', query: undefined }),
  (message, field, reader, wireType) => {
    if (wireType !== 2) return false;
    if (field === 1) message.host = reader.string();
    else if (field === 3) message.query = { kind: 'file_by_filename', value: reader.string() };
    else if (field === 4) message.query = { kind: 'file_containing_symbol', value: reader.string() };
    else if (field === 7) {
      reader.string();
      message.query = { kind: 'list_services' };
    } else if (field === 5 || field === 6) {
      reader.skipType(wireType);
      message.query = { kind: 'unsupported' };
    } else return false;
    return true;
  },
);

/** FileDescriptorResponse, ListServiceResponse (of ServiceResponse) and ErrorResponse. */
const filesCodec = messageCodec<Buffer[]>(
  (files, writer) => files.forEach((file) => writer.uint32((1 << 3) | 2).bytes(file)),
  () => [],
  (files, field, reader, wireType) => field === 1 && wireType === 2 && files.push(Buffer.from(readBuffer(reader))) > 0,
);
const serviceNameCodec = messageCodec<{ name: string }>(
  (service, writer) => void writer.uint32((1 << 3) | 2).string(service.name),
  () => ({ name: '' }),
  (service, field, reader, wireType) => field === 1 && wireType === 2 && (service.name = reader.string()) !== undefined,
);
const servicesCodec = messageCodec<string[]>(
  (names, writer) => names.forEach((name) => writer.uint32((1 << 3) | 2).bytes(serviceNameCodec.encode({ name }))),
  () => [],
  (names, field, reader, wireType) => field === 1 && wireType === 2 && names.push(serviceNameCodec.decode(readBuffer(reader)).name) > 0,
);
const errorCodec = messageCodec<{ code: number; message: string }>(
  (error, writer) => {
    if (error.code !== 0) writer.uint32((1 << 3) | 0).int32(error.code);
    if (error.message !== '') writer.uint32((2 << 3) | 2).string(error.message);
  },
  () => ({ code: 0, message: '' }),
  (error, field, reader, wireType) => {
    if (field === 1 && wireType === 0) error.code = reader.int32();
    else if (field === 2 && wireType === 2) error.message = reader.string();
    else return false;
    return true;
  },
);

export const reflectionResponseCodec: MessageCodec<ReflectionResponse> = messageCodec<ReflectionResponse>(
  (response, writer) => {
    if (response.validHost !== '') writer.uint32((1 << 3) | 2).string(response.validHost);
    if (response.originalRequest) writer.uint32((2 << 3) | 2).bytes(reflectionRequestCodec.encode(response.originalRequest));
    const answer = response.answer;
    if (answer?.kind === 'files') writer.uint32((4 << 3) | 2).bytes(filesCodec.encode(answer.fileDescriptorProtos));
    else if (answer?.kind === 'services') writer.uint32((6 << 3) | 2).bytes(servicesCodec.encode(answer.names));
    else if (answer?.kind === 'error') writer.uint32((7 << 3) | 2).bytes(errorCodec.encode(answer));
  },
  () => ({ validHost: '', originalRequest: undefined, answer: undefined }),
  (response, field, reader, wireType) => {
    if (wireType !== 2) return false;
    if (field === 1) response.validHost = reader.string();
    else if (field === 2) response.originalRequest = reflectionRequestCodec.decode(readBuffer(reader));
    else if (field === 4) response.answer = { kind: 'files', fileDescriptorProtos: filesCodec.decode(readBuffer(reader)) };
    else if (field === 6) response.answer = { kind: 'services', names: servicesCodec.decode(readBuffer(reader)) };
    else if (field === 7) response.answer = { kind: 'error', ...errorCodec.decode(readBuffer(reader)) };
    else return false;
    return true;
  },
);

export const REFLECTION_V1ALPHA = 'grpc.reflection.v1alpha.ServerReflection';
export const REFLECTION_V1 = 'grpc.reflection.v1.ServerReflection';

export interface ReflectionService extends grpc.ServiceDefinition {
  ServerReflectionInfo: grpc.MethodDefinition<ReflectionRequest, ReflectionResponse>;
}

/** The service under one of its two names (v1alpha, which go-plugin serves, or v1). */
export function reflectionService(name: typeof REFLECTION_V1ALPHA | typeof REFLECTION_V1): ReflectionService {
  return {
    ServerReflectionInfo: streamingMethod(`/${name}/ServerReflectionInfo`, reflectionRequestCodec, reflectionResponseCodec, {
      requestStream: true,
      responseStream: true,
    }),
  };
}

// gRPC server reflection for a TypeScript plugin, as go-plugin >= 1.2 serves it for Go plugins: tools
// such as grpcurl or `gatehouse call` without --proto can then find the plugin's methods.
import * as grpc from '@grpc/grpc-js';
import { GatehouseError } from '../errors.js';
import { DescriptorIndex, descriptorSetFiles } from '../transport/file-descriptors.js';
import {
  REFLECTION_V1,
  REFLECTION_V1ALPHA,
  reflectionService,
  type ReflectionAnswer,
  type ReflectionRequest,
  type ReflectionResponse,
} from '../transport/reflection-protocol.js';
import { serviceName, type PluginService } from '../transport/service.js';
import { writePaced } from '../transport/paced-writes.js';

/** Where a definition carries its .proto descriptors: proto-loader's (and the protobuf-es adapter's) requestType. */
interface DescribedMethod {
  path: string;
  requestType?: { fileDescriptorProtos?: readonly Buffer[] };
  responseType?: { fileDescriptorProtos?: readonly Buffer[] };
}

/**
 * The reflection services (v1alpha and v1) for what the plugin serves. The names are read at once (a
 * walk over the definitions), the descriptors only on the first query that needs them: a plugin whose
 * host never asks pays nothing for them before its handshake line. `fileDescriptorSet` describes
 * services whose definitions carry no descriptors (ts-proto's).
 */
export function reflectionServices(served: readonly PluginService[], fileDescriptorSet?: Uint8Array): PluginService[] {
  const names = new Set<string>();
  for (const service of served) {
    for (const method of Object.values(service.definition) as DescribedMethod[]) names.add(serviceName(method.path));
  }
  let index: DescriptorIndex | undefined;
  const descriptors = (): DescriptorIndex => (index ??= describe(served, fileDescriptorSet));
  const listed = [...names, REFLECTION_V1ALPHA, REFLECTION_V1].sort();
  const answer = (request: ReflectionRequest): ReflectionAnswer => {
    const query = request.query;
    if (query?.kind === 'list_services') return { kind: 'services', names: listed };
    if (query?.kind === 'file_by_filename' || query?.kind === 'file_containing_symbol') {
      let known: DescriptorIndex;
      try {
        known = descriptors();
      } catch (error) {
        // The plugin's own definitions or set carry a descriptor that does not parse: say so to the caller
        // (and on the next query again) rather than end the plugin long after it started.
        return { kind: 'error', code: grpc.status.INTERNAL, message: `the plugin's descriptors could not be read: ${(error as Error).message}` };
      }
      const file = query.kind === 'file_by_filename' ? query.value : known.fileOfSymbol(query.value);
      const files = file === undefined ? undefined : known.withDependencies(file);
      if (files !== undefined) return { kind: 'files', fileDescriptorProtos: files };
      const hint = !names.has(query.value)
        ? ''
        : fileDescriptorSet === undefined
          ? " (the service is served from a definition without descriptors, such as ts-proto's: pass serve() its fileDescriptorSet)"
          : " (the service's definition carries no descriptors and serve()'s fileDescriptorSet does not declare it: generate the set from its .proto)";
      return { kind: 'error', code: grpc.status.NOT_FOUND, message: `${query.value} not found${hint}` };
    }
    return { kind: 'error', code: grpc.status.UNIMPLEMENTED, message: 'extension queries are not supported' };
  };
  const implementation = {
    ServerReflectionInfo: (call: grpc.ServerDuplexStream<ReflectionRequest, ReflectionResponse>) => {
      call.on('data', (request: ReflectionRequest) =>
        writePaced(call, { validHost: request.host, originalRequest: request, answer: answer(request) }),
      );
      call.on('end', () => call.end());
    },
  };
  return [
    { definition: reflectionService(REFLECTION_V1ALPHA), implementation },
    { definition: reflectionService(REFLECTION_V1), implementation },
  ];
}

/**
 * What serve() can tell of a descriptor set without parsing it (that waits for the first query): bytes,
 * and no larger than the plugin may send, since a reflection answer carries its files.
 */
export function checkDescriptorSet(set: unknown, maxMessageBytes: number): void {
  if (set === undefined) return;
  if (!(set instanceof Uint8Array)) {
    throw new GatehouseError('INVALID_OPTIONS', 'serve() fileDescriptorSet must be the bytes of a FileDescriptorSet (a Uint8Array or Buffer)');
  }
  if (set.byteLength > maxMessageBytes) {
    throw new GatehouseError(
      'INVALID_OPTIONS',
      `serve() fileDescriptorSet is ${set.byteLength} bytes, over maxMessageBytes (${maxMessageBytes}): reflection could not send it; raise maxMessageBytes or leave out unused imports`,
    );
  }
}

/** The files of the set, then every descriptor the definitions carry, indexed by file and symbol. */
function describe(served: readonly PluginService[], fileDescriptorSet: Uint8Array | undefined): DescriptorIndex {
  const index = new DescriptorIndex();
  for (const file of fileDescriptorSet === undefined ? [] : descriptorSetFiles(fileDescriptorSet)) index.add(file);
  // proto-loader hands every type of a package the same descriptor buffers: each is parsed once.
  const seen = new Set<Uint8Array>();
  for (const service of served) {
    for (const method of Object.values(service.definition) as DescribedMethod[]) {
      for (const file of [...(method.requestType?.fileDescriptorProtos ?? []), ...(method.responseType?.fileDescriptorProtos ?? [])]) {
        if (seen.has(file)) continue;
        seen.add(file);
        index.add(Buffer.from(file));
      }
    }
  }
  return index;
}

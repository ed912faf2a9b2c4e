/**
 * `gatehouse call` without --proto: the plugin's own descriptors, over gRPC server reflection (which
 * go-plugin >= 1.2 and gatehouse's SDK serve), turned into the protobufjs Root the calls are planned on.
 */
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import type { Namespace, Root } from 'protobufjs';
import 'protobufjs/ext/descriptor/index.js';
import { GatehouseError } from '../errors.js';
import type { Plugin } from '../host/plugin.js';
import { fileSymbols } from '../transport/file-descriptors.js';
import { Writer } from '../transport/protobuf.js';
import {
  REFLECTION_V1,
  REFLECTION_V1ALPHA,
  reflectionService,
  type ReflectionQuery,
  type ReflectionResponse,
} from '../transport/reflection-protocol.js';

/** Bounds on what a plugin's reflection may make us hold: services listed, files kept. */
const MAX_REFLECTED_SERVICES = 256;
const MAX_REFLECTED_FILES = 1024;
/** Services every plugin has and that no one calls through `gatehouse call`. */
const SKIPPED = /^(grpc\.reflection\.|plugin\.(GRPCBroker|GRPCController|GRPCStdio)$)/;

export const REFLECTION_SOURCE = "the plugin's gRPC reflection";

export async function reflectedRoot(plugin: Plugin, timeoutMs: number): Promise<Root> {
  const { service, responses: listing } = await firstServed(plugin, timeoutMs);
  const names = listing.flatMap((r) => (r.answer?.kind === 'services' ? r.answer.names : [])).filter((name) => !SKIPPED.test(name));
  if (names.length > MAX_REFLECTED_SERVICES) {
    throw new GatehouseError('REFLECTION_FAILED', `the plugin's reflection lists ${names.length} services, over the limit of ${MAX_REFLECTED_SERVICES}`);
  }
  const answers = await ask(plugin, service, names.map((value) => ({ kind: 'file_containing_symbol', value })), timeoutMs);
  const files = new Map<string, Buffer>();
  const missing: string[] = [];
  for (const [index, response] of answers.entries()) {
    if (response.answer?.kind !== 'files') {
      missing.push(response.answer?.kind === 'error' ? response.answer.message : `${names[index]}: no answer`);
      continue;
    }
    for (const file of response.answer.fileDescriptorProtos) files.set(fileSymbols(file).name, file);
    if (files.size > MAX_REFLECTED_FILES) {
      throw new GatehouseError('REFLECTION_FAILED', `the plugin's reflection sent over ${MAX_REFLECTED_FILES} files`);
    }
  }
  if (files.size === 0) {
    throw new GatehouseError(
      'REFLECTION_FAILED',
      `the plugin serves gRPC reflection but described none of its services (${missing.join(', ') || 'none listed'}): pass --proto FILE`,
    );
  }
  return rootFromFileDescriptors(files.values());
}

/** A Root of FileDescriptorProto-encoded files, as reflection sends them; REFLECTION_FAILED when they do not resolve. */
export function rootFromFileDescriptors(files: Iterable<Uint8Array>): Root {
  // A FileDescriptorSet is its files, each a length-delimited field 1.
  const set = Writer.create();
  for (const file of files) set.uint32((1 << 3) | 2).bytes(file);
  try {
    const root = (protobuf.Root as unknown as { fromDescriptor(set: Uint8Array): Root }).fromDescriptor(set.finish());
    root.resolveAll();
    restoreMaps(root);
    return root;
  } catch (cause) {
    throw new GatehouseError('REFLECTION_FAILED', `the plugin's reflection sent descriptors that do not resolve: ${(cause as Error).message}`, { cause });
  }
}

/**
 * protobufjs's fromDescriptor leaves a map field as the wire has it, a repeated XEntry message, so a
 * request could not write it as proto3 JSON does (an object) nor a response be shown so; each becomes
 * the map field the .proto declared (the same bytes on the wire).
 */
function restoreMaps(namespace: Namespace): void {
  for (const nested of namespace.nestedArray) {
    if (nested instanceof protobuf.Type) {
      for (const field of nested.fieldsArray) {
        const entry = field.resolvedType;
        if (!field.repeated || !(entry instanceof protobuf.Type) || entry.getOption('map_entry') !== true) continue;
        const { key, value } = entry.fields;
        if (key === undefined || value === undefined) continue;
        const map = new protobuf.MapField(field.name, field.id, key.type, value.type, field.options);
        nested.remove(field);
        // Resolved here: the root, resolved once already, does not resolve again.
        nested.add(map);
        map.resolve();
      }
    }
    if (nested instanceof protobuf.Namespace) restoreMaps(nested);
  }
}

/** v1alpha first (what go-plugin serves), then v1; neither is a clear failure that names --proto. */
async function firstServed(plugin: Plugin, timeoutMs: number): Promise<{ service: string; responses: ReflectionResponse[] }> {
  for (const service of [REFLECTION_V1ALPHA, REFLECTION_V1]) {
    try {
      return { service, responses: await ask(plugin, service, [{ kind: 'list_services' }], timeoutMs) };
    } catch (error) {
      if (!(error instanceof GatehouseError && error.details.grpcCode === grpc.status.UNIMPLEMENTED)) throw error;
    }
  }
  throw new GatehouseError(
    'REFLECTION_UNAVAILABLE',
    `the plugin does not serve gRPC reflection (${REFLECTION_V1ALPHA} or ${REFLECTION_V1}): pass --proto FILE with its .proto`,
  );
}

/** One reflection stream: every query written, then every answer read, in order. */
function ask(plugin: Plugin, service: string, queries: ReflectionQuery[], timeoutMs: number): Promise<ReflectionResponse[]> {
  const method = reflectionService(service as typeof REFLECTION_V1).ServerReflectionInfo;
  const call = plugin
    .grpcClient({ ServerReflectionInfo: method })
    .makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, { deadline: Date.now() + timeoutMs });
  return new Promise((resolve, reject) => {
    const responses: ReflectionResponse[] = [];
    call.on('data', (response: ReflectionResponse) => {
      responses.push(response);
      // A plugin that answers more than it was asked is not followed further.
      if (responses.length > queries.length) call.cancel();
    });
    call.on('error', (error: grpc.ServiceError) =>
      reject(
        new GatehouseError('REFLECTION_FAILED', `${service}: ${grpc.status[error.code] ?? error.code}: ${error.details}`, {
          cause: error,
          details: { grpcCode: error.code },
        }),
      ),
    );
    call.on('end', () =>
      responses.length === queries.length
        ? resolve(responses)
        : reject(new GatehouseError('REFLECTION_FAILED', `${service}: ${responses.length} answers to ${queries.length} queries`)),
    );
    for (const query of queries) call.write({ host: '', query });
    call.end();
  });
}

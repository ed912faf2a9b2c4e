import type * as grpc from '@grpc/grpc-js';
import { GatehouseError } from '../errors.js';

/**
 * The four kinds of gRPC method, read from a definition's types: ts-proto and protobuf-es definitions
 * carry literal `requestStream`/`responseStream`; proto-loader's say only `boolean` ('unknown').
 */
/** `/pkg.Service/Method` -> `pkg.Service`. */
export function serviceName(methodPath: string): string {
  return methodPath.replace(/^\/([^/]*)\/.*$/, '$1');
}

export type MethodKind<M> = M extends { requestStream: true; responseStream: true }
  ? 'bidi'
  : M extends { requestStream: true; responseStream: false }
    ? 'client'
    : M extends { requestStream: false; responseStream: true }
      ? 'server'
      : M extends { requestStream: false; responseStream: false }
        ? 'unary'
        : 'unknown';

/** A method's kind as grpc-js' generated client interface declares it (proto-loader-gen-types' `XxxClient`). */
export type GeneratedMethodKind<F> = F extends (...args: never[]) => infer R
  ? // `never` for what is written: a stream's write() takes its own request type, which never is assignable to.
    R extends grpc.ClientDuplexStream<never, unknown>
    ? 'bidi'
    : R extends grpc.ClientWritableStream<never>
      ? 'client'
      : R extends grpc.ClientReadableStream<unknown>
        ? 'server'
        : R extends grpc.ClientUnaryCall
          ? 'unary'
          : 'unknown'
  : 'unknown';

/**
 * The kind as the types can know it: from the definition's literal flags (ts-proto, protobuf-es), else
 * from the generated client interface `G` that came with it (proto-loader-gen-types), else 'unknown'.
 */
export type KnownMethodKind<D, K extends keyof D, G> =
  MethodKind<D[K]> extends 'unknown' ? GeneratedMethodKind<K extends keyof G ? G[K] : undefined> : MethodKind<D[K]>;

/** What grpc.loadPackageDefinition gives for a service: proto-loader-gen-types types it with its client. */
export interface GeneratedServiceConstructor<D extends grpc.ServiceDefinition, G> {
  new (...args: never[]): G;
  service: D;
}

/** What a caller sends: proto-loader's input ("permissive") type, ts-proto's message, protobuf-es' init shape. */
export type MethodInput<M> = M extends { requestSerialize: (value: infer Req) => Buffer } ? Req : never;
/** What a caller receives: proto-loader's `__Output` type, ts-proto's message, protobuf-es' message. */
export type MethodOutput<M> = M extends { responseDeserialize: (bytes: Buffer) => infer Res } ? Res : never;
/** What a handler receives. */
export type HandlerInput<M> = M extends { requestDeserialize: (bytes: Buffer) => infer Req } ? Req : never;
/** What a handler answers. */
export type HandlerOutput<M> = M extends { responseSerialize: (value: infer Res) => Buffer } ? Res : never;

/** The grpc-js handler for one method of kind `Kind` (any kind when the types do not say). */
export type MethodHandler<M, Kind = MethodKind<M>> = {
  unary: grpc.handleUnaryCall<HandlerInput<M>, HandlerOutput<M>>;
  server: grpc.handleServerStreamingCall<HandlerInput<M>, HandlerOutput<M>>;
  client: grpc.handleClientStreamingCall<HandlerInput<M>, HandlerOutput<M>>;
  bidi: grpc.handleBidiStreamingCall<HandlerInput<M>, HandlerOutput<M>>;
  unknown:
    | grpc.handleUnaryCall<HandlerInput<M>, HandlerOutput<M>>
    | grpc.handleServerStreamingCall<HandlerInput<M>, HandlerOutput<M>>
    | grpc.handleClientStreamingCall<HandlerInput<M>, HandlerOutput<M>>
    | grpc.handleBidiStreamingCall<HandlerInput<M>, HandlerOutput<M>>;
}[Kind & ('unary' | 'server' | 'client' | 'bidi' | 'unknown')];

/**
 * The keys to type a service by: its named methods. proto-loader-gen-types' definitions extend
 * grpc.ServiceDefinition and so carry a string index signature, which would let a misspelt method
 * through; it is kept only for a definition that has nothing else (grpc.ServiceDefinition itself).
 */
export type MethodKey<D, K extends keyof D> = string extends K
  ? [NamedKeys<D>] extends [never]
    ? K
    : never
  : K;
type NamedKeys<D> = keyof { [K in keyof D as string extends K ? never : number extends K ? never : K]: 0 };

/** One handler per method of the definition, by the definition's own method names. */
export type ServiceImplementation<D extends grpc.ServiceDefinition, G = unknown> = {
  [K in keyof D as MethodKey<D, K>]: MethodHandler<D[K], KnownMethodKind<D, K, G>>;
};

/**
 * A gRPC service and its handlers, as a plugin serves it or either side serves it through the broker.
 * Build one with `pluginService()` to have the handlers checked against the definition.
 */
export interface PluginService<D extends grpc.ServiceDefinition = grpc.ServiceDefinition> {
  definition: D;
  implementation: ServiceImplementation<D>;
}

/**
 * A service whose implementation the compiler checks against its definition: a misspelt or missing
 * method is a type error here rather than UNIMPLEMENTED at call time.
 */
export function pluginService<D extends grpc.ServiceDefinition, G>(
  service: GeneratedServiceConstructor<D, G>,
  implementation: ServiceImplementation<D, G>,
): PluginService<D>;
export function pluginService<D extends grpc.ServiceDefinition>(
  service: ServiceSource<D>,
  implementation: ServiceImplementation<D>,
): PluginService<D>;
export function pluginService<D extends grpc.ServiceDefinition>(
  service: ServiceSource<D>,
  implementation: ServiceImplementation<D>,
): PluginService<D> {
  return { definition: serviceDefinition(service, 'pluginService()'), implementation };
}

/** What `plugin.client()` accepts: a service definition, or what `grpc.loadPackageDefinition` makes of one. */
export type ServiceSource<D extends grpc.ServiceDefinition> = D | { service: D };

/**
 * The definition behind a ServiceSource, checked: anything else (a whole package object, a message
 * type, a protobuf-es descriptor) is refused with what was expected instead of a TypeError later.
 */
export function serviceDefinition<D extends grpc.ServiceDefinition>(source: ServiceSource<D>, where: string): D {
  const candidate: unknown =
    (typeof source === 'function' || typeof source === 'object') && source !== null && 'service' in source
      ? source.service
      : source;
  const problem = definitionProblem(candidate);
  if (problem !== undefined) {
    throw new GatehouseError(
      'INVALID_OPTIONS',
      `${where} expects one gRPC service definition (proto-loader's loadSync(...)['pkg.Service'], ` +
        `a service from grpc.loadPackageDefinition such as proto.pkg.Service, or ts-proto's XxxService), but got ${problem}`,
    );
  }
  return candidate as D;
}

/**
 * One `{ definition, implementation }` a server is given (serve()'s versions, broker.serve()), checked before
 * anything is served: grpc-js's own refusal is a plain Error naming neither the entry nor the fix. The
 * definition may be anything plugin.client() takes; it is returned as the definition itself.
 */
export function checkPluginService(service: unknown, where: string): PluginService {
  if (typeof service !== 'object' || service === null || !('definition' in service) || !('implementation' in service)) {
    let got: string;
    try {
      serviceDefinition(service as ServiceSource<grpc.ServiceDefinition>, where);
      got = 'a service definition without its handlers';
    } catch {
      got = service === null ? 'null' : typeof service === 'object' ? 'an object without both' : `a ${typeof service}`;
    }
    throw new GatehouseError(
      'INVALID_OPTIONS',
      `${where}: expected { definition, implementation } as pluginService(service, handlers) makes, but got ${got}`,
    );
  }
  const { definition, implementation } = service as { definition: unknown; implementation: unknown };
  if (typeof implementation !== 'object' || implementation === null) {
    throw new GatehouseError('INVALID_OPTIONS', `${where}.implementation must be an object of handlers, one per method`);
  }
  return {
    definition: serviceDefinition(definition as ServiceSource<grpc.ServiceDefinition>, `${where}.definition`),
    implementation: implementation as ServiceImplementation<grpc.ServiceDefinition>,
  };
}

/**
 * Checks each entry of a `versions` object (go-plugin's VersionedPlugins: protocol version -> list) with
 * `check`, naming it `${where} versions[V][I]`; a version whose value is not a list is INVALID_OPTIONS too.
 * The versions themselves are checked where they are negotiated.
 */
export function checkVersionLists<T>(versions: unknown, where: string, check: (entry: unknown, label: string) => T): Map<number, T[]> {
  if (typeof versions !== 'object' || versions === null) {
    throw new GatehouseError('INVALID_OPTIONS', `${where}: versions must be an object of protocol version -> list of services`);
  }
  const checked = new Map<number, T[]>();
  for (const [version, entries] of Object.entries(versions)) {
    if (!Array.isArray(entries)) {
      throw new GatehouseError(
        'INVALID_OPTIONS',
        `${where}: versions[${version}] must be a list of services (go-plugin's PluginSet), e.g. { ${version}: [service] }`,
      );
    }
    checked.set(Number(version), entries.map((entry: unknown, i) => check(entry, `${where} versions[${version}][${i}]`)));
  }
  return checked;
}

function definitionProblem(candidate: unknown): string | undefined {
  if (typeof candidate !== 'object' || candidate === null) return candidate === null ? 'null' : `a ${typeof candidate}`;
  if ((candidate as { kind?: unknown }).kind === 'service') {
    return "a @bufbuild/protobuf service descriptor: wrap it with protobufEsService() from 'gatehouse-plugins/protobuf-es'";
  }
  const entries = Object.entries(candidate);
  if (entries.length === 0) return 'an empty object';
  const keys = entries.map(([key]) => key);
  const listed = keys.slice(0, 5).join(', ') + (keys.length > 5 ? ', ...' : '');
  const notMethods = entries.filter(([, value]) => !isMethodDefinition(value)).map(([key]) => key);
  if (notMethods.length === 0) return undefined;
  if (notMethods.length === entries.length) {
    return `an object whose entries (${listed}) are not methods: a package object? pick one service from it`;
  }
  return `an object whose entries ${notMethods.slice(0, 5).join(', ')} are not method definitions`;
}

function isMethodDefinition(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const method = value as Partial<Record<keyof grpc.MethodDefinition<unknown, unknown>, unknown>>;
  return (
    typeof method.path === 'string' &&
    method.path.startsWith('/') &&
    typeof method.requestStream === 'boolean' &&
    typeof method.responseStream === 'boolean' &&
    typeof method.requestSerialize === 'function' &&
    typeof method.responseDeserialize === 'function'
  );
}

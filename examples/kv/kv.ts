// The KV service, loaded from kv.proto with @grpc/proto-loader, and typed for TypeScript callers.
import { fileURLToPath } from 'node:url';
import type * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

export interface GetRequest {
  key: string;
}
export interface GetResponse {
  value: Buffer;
}
export interface PutRequest {
  key: string;
  value: Buffer;
}
export type Empty = Record<string, never>;

export interface KVService extends grpc.ServiceDefinition {
  Get: grpc.MethodDefinition<GetRequest, GetResponse>;
  Put: grpc.MethodDefinition<PutRequest, Empty>;
}

export { KV_COOKIE } from './kv-cookie.js';

// Compiled to dist/examples/kv/, the .proto stays in examples/kv/.
export const KV_PROTO_PATH = fileURLToPath(new URL('../../../examples/kv/kv.proto', import.meta.url));

export function loadKVService(): KVService {
  const definitions = loadSync(KV_PROTO_PATH, { keepCase: true, defaults: true });
  return definitions['kv.KV'] as unknown as KVService;
}

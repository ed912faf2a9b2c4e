// The secrets engine protocol, shared by the server and the engines it runs as plugins. The text is
// kept here (not in a .proto file read at run time) so that an engine bundled into one signed file
// needs nothing else on disk; engine.proto holds the same text for engines in other languages.
import { fromJSON } from '@grpc/proto-loader';
import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import type { MagicCookie } from 'gatehouse-plugins/plugin';

export const ENGINE_PROTO = `
syntax = "proto3";
package secrets;
option go_package = "secrets";

// One HTTP request below a mount, as Vault's logical.Request: the engine sees only the path inside its mount.
message Request {
  string operation = 1; // read, write, delete
  string path = 2;
  bytes body = 3;       // JSON
  uint32 storage_id = 4; // broker id of the Storage service for this mount
}

message Response {
  uint32 status = 1;    // an HTTP status
  bytes body = 2;       // JSON
}

service Engine {
  rpc Handle(Request) returns (Response);
}

message Key { string key = 1; }
message Entry { string key = 1; bytes value = 2; }
// revision: changes at every write of the key, never to a value it had before; 0 when not found.
message Value { bool found = 1; bytes value = 2; uint64 revision = 3; }
// Written only if the key's revision is still this one (0: only if the key does not exist).
message Swap { string key = 1; bytes value = 2; uint64 revision = 3; }
message Swapped { bool written = 1; }
message Keys { repeated string keys = 1; }
message Empty {}

// The host's storage, seen by one mount: every key is inside that mount's prefix.
// Two processes of one engine may serve a mount at once (during a reload, the old one finishes its
// calls while the new one takes new ones), so a read-modify-write must be Get, then CompareAndPut with
// the revision read, and again from Get when it was not written: a Put could overwrite the other's write.
service Storage {
  rpc Get(Key) returns (Value);
  rpc Put(Entry) returns (Empty);
  rpc CompareAndPut(Swap) returns (Swapped);
  rpc Delete(Key) returns (Empty);
  rpc List(Key) returns (Keys);
}
`;

/** Shared by the server and every engine; a binary run by hand without it says it is a plugin. */
export const ENGINE_COOKIE: MagicCookie = { key: 'GATEHOUSE_SECRETS_ENGINE', value: 'b5d0a2c4-secrets-engine-v1' };
/** The broker id under which the server serves each engine its storage. */
export const STORAGE_BROKER_ID = 1;

export interface EngineRequest {
  operation: string;
  path: string;
  body: Buffer;
  storage_id: number;
}
export interface EngineResponse {
  status: number;
  body: Buffer;
}

export interface EngineService extends grpc.ServiceDefinition {
  Handle: grpc.MethodDefinition<EngineRequest, EngineResponse>;
}

export interface StorageService extends grpc.ServiceDefinition {
  Get: grpc.MethodDefinition<{ key: string }, { found: boolean; value: Buffer; revision: number }>;
  Put: grpc.MethodDefinition<{ key: string; value: Buffer }, Record<string, never>>;
  CompareAndPut: grpc.MethodDefinition<{ key: string; value: Buffer; revision: number }, { written: boolean }>;
  Delete: grpc.MethodDefinition<{ key: string }, Record<string, never>>;
  List: grpc.MethodDefinition<{ key: string }, { keys: string[] }>;
}

export function loadEngineProtocol(): { engine: EngineService; storage: StorageService } {
  const root = protobuf.parse(ENGINE_PROTO, { keepCase: true }).root;
  // longs: Number: a revision counts writes within one server run, far below 2^53.
  const definitions = fromJSON(root.toJSON(), { keepCase: true, defaults: true, longs: Number });
  return {
    engine: definitions['secrets.Engine'] as unknown as EngineService,
    storage: definitions['secrets.Storage'] as unknown as StorageService,
  };
}

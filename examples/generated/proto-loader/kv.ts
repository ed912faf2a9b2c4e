import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { Empty as _kv_Empty, Empty__Output as _kv_Empty__Output } from './kv/Empty.js';
import type { GetRequest as _kv_GetRequest, GetRequest__Output as _kv_GetRequest__Output } from './kv/GetRequest.js';
import type { GetResponse as _kv_GetResponse, GetResponse__Output as _kv_GetResponse__Output } from './kv/GetResponse.js';
import type { KVClient as _kv_KVClient, KVDefinition as _kv_KVDefinition } from './kv/KV.js';
import type { PutRequest as _kv_PutRequest, PutRequest__Output as _kv_PutRequest__Output } from './kv/PutRequest.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  kv: {
    Empty: MessageTypeDefinition<_kv_Empty, _kv_Empty__Output>
    GetRequest: MessageTypeDefinition<_kv_GetRequest, _kv_GetRequest__Output>
    GetResponse: MessageTypeDefinition<_kv_GetResponse, _kv_GetResponse__Output>
    KV: SubtypeConstructor<typeof grpc.Client, _kv_KVClient> & { service: _kv_KVDefinition }
    PutRequest: MessageTypeDefinition<_kv_PutRequest, _kv_PutRequest__Output>
  }
}


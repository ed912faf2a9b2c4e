// Original file: examples/kv/kv.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { Empty as _kv_Empty, Empty__Output as _kv_Empty__Output } from '../kv/Empty.js';
import type { GetRequest as _kv_GetRequest, GetRequest__Output as _kv_GetRequest__Output } from '../kv/GetRequest.js';
import type { GetResponse as _kv_GetResponse, GetResponse__Output as _kv_GetResponse__Output } from '../kv/GetResponse.js';
import type { PutRequest as _kv_PutRequest, PutRequest__Output as _kv_PutRequest__Output } from '../kv/PutRequest.js';

export interface KVClient extends grpc.Client {
  Get(argument: _kv_GetRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_kv_GetResponse__Output>): grpc.ClientUnaryCall;
  Get(argument: _kv_GetRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_kv_GetResponse__Output>): grpc.ClientUnaryCall;
  Get(argument: _kv_GetRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_kv_GetResponse__Output>): grpc.ClientUnaryCall;
  Get(argument: _kv_GetRequest, callback: grpc.requestCallback<_kv_GetResponse__Output>): grpc.ClientUnaryCall;
  get(argument: _kv_GetRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_kv_GetResponse__Output>): grpc.ClientUnaryCall;
  get(argument: _kv_GetRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_kv_GetResponse__Output>): grpc.ClientUnaryCall;
  get(argument: _kv_GetRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_kv_GetResponse__Output>): grpc.ClientUnaryCall;
  get(argument: _kv_GetRequest, callback: grpc.requestCallback<_kv_GetResponse__Output>): grpc.ClientUnaryCall;
  
  Put(argument: _kv_PutRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_kv_Empty__Output>): grpc.ClientUnaryCall;
  Put(argument: _kv_PutRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_kv_Empty__Output>): grpc.ClientUnaryCall;
  Put(argument: _kv_PutRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_kv_Empty__Output>): grpc.ClientUnaryCall;
  Put(argument: _kv_PutRequest, callback: grpc.requestCallback<_kv_Empty__Output>): grpc.ClientUnaryCall;
  put(argument: _kv_PutRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_kv_Empty__Output>): grpc.ClientUnaryCall;
  put(argument: _kv_PutRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_kv_Empty__Output>): grpc.ClientUnaryCall;
  put(argument: _kv_PutRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_kv_Empty__Output>): grpc.ClientUnaryCall;
  put(argument: _kv_PutRequest, callback: grpc.requestCallback<_kv_Empty__Output>): grpc.ClientUnaryCall;
  
}

export interface KVHandlers extends grpc.UntypedServiceImplementation {
  Get: grpc.handleUnaryCall<_kv_GetRequest__Output, _kv_GetResponse>;
  
  Put: grpc.handleUnaryCall<_kv_PutRequest__Output, _kv_Empty>;
  
}

export interface KVDefinition extends grpc.ServiceDefinition {
  Get: MethodDefinition<_kv_GetRequest, _kv_GetResponse, _kv_GetRequest__Output, _kv_GetResponse__Output>
  Put: MethodDefinition<_kv_PutRequest, _kv_Empty, _kv_PutRequest__Output, _kv_Empty__Output>
}

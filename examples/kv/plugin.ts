// A KV plugin in TypeScript. A gatehouse host or a go-plugin host (with AutoMTLS) can run it:
//   node dist/examples/kv/plugin.js   (started by a host, never by hand)
import type * as grpc from '@grpc/grpc-js';
import { serve } from '../../src/plugin/index.js';
import { KV_COOKIE, loadKVService, type Empty, type GetRequest, type GetResponse, type PutRequest } from './kv.js';

const store = new Map<string, Buffer>();

const plugin = await serve({
  cookie: KV_COOKIE,
  versions: {
    1: [
      {
        definition: loadKVService(),
        implementation: {
          Put: ((call, callback) => {
            store.set(call.request.key, call.request.value);
            plugin.logger.info({ key: call.request.key, bytes: call.request.value.length }, 'put');
            callback(null, {});
          }) satisfies grpc.handleUnaryCall<PutRequest, Empty>,
          Get: ((call, callback) => {
            callback(null, { value: store.get(call.request.key) ?? Buffer.alloc(0) });
          }) satisfies grpc.handleUnaryCall<GetRequest, GetResponse>,
        },
      },
    ],
  },
});

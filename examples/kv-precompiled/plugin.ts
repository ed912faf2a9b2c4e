// The KV plugin in the form docs/plugins.md recommends: codecs generated ahead of time (ts-proto, see
// examples/generate.ts), bundled with `gatehouse bundle`. Nothing parses a .proto at start, and the
// bundle loads neither @grpc/proto-loader nor protobufjs's parser: compare examples/kv/plugin.ts, which
// reads kv.proto with proto-loader at every start. ts-proto's definitions carry no descriptors, so the
// plugin hands serve() kv.proto's FileDescriptorSet (generated beside them) for gRPC reflection:
// `gatehouse call` and grpcurl then need no .proto.
//   gatehouse bundle examples/kv-precompiled/plugin.ts --out kv-1/plugin.js   (then run by a host)
import { pluginService, serve } from '../../src/plugin/index.js';
import { fileDescriptorSet } from '../generated/ts-proto/kv.descriptor-set.js';
import { KVService } from '../generated/ts-proto/kv.js';
import { KV_COOKIE } from '../kv/kv-cookie.js';

const store = new Map<string, Uint8Array>();

const plugin = await serve({
  cookie: KV_COOKIE,
  versions: {
    1: [
      pluginService(KVService, {
        put: (call, callback) => {
          store.set(call.request.key, call.request.value);
          plugin.logger.info({ key: call.request.key, bytes: call.request.value.length }, 'put');
          callback(null, {});
        },
        get: (call, callback) => callback(null, { value: store.get(call.request.key) ?? new Uint8Array(0) }),
      }),
    ],
  },
  fileDescriptorSet,
});

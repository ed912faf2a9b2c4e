// The Notes plugin with @grpc/proto-loader and the types proto-loader-gen-types generates.
//   node dist/examples/typed/proto-loader-plugin.js   (started by a host, never by hand)
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { pluginService, serve } from '../../src/plugin/index.js';
import type { ProtoGrpcType } from '../generated/proto-loader/notes.js';
import { NOTES_COOKIE, NotesStore } from './notes-store.js';

// Compiled to dist/examples/typed/, the .proto stays in examples/typed/.
export const NOTES_PROTO_PATH = fileURLToPath(new URL('../../../examples/typed/notes.proto', import.meta.url));

const proto = grpc.loadPackageDefinition(
  loadSync(NOTES_PROTO_PATH, { keepCase: true, longs: String, defaults: true, oneofs: true }),
) as unknown as ProtoGrpcType;
const store = new NotesStore();

const plugin = await serve({
  cookie: NOTES_COOKIE,
  versions: {
    1: [
      // proto.notes.Notes (not only its .service) carries the client interface that tells each method's kind.
      pluginService(proto.notes.Notes, {
        Add: (call, callback) => callback(null, { id: store.add(call.request.text, call.request.stars) }),
        List: (call) =>
          store.list(call, call.request.prefix, call.request.limit, () => plugin.logger.info({}, 'list cancelled')),
        Upload: (call, callback) => {
          let count = 0;
          call.on('data', (note) => count += store.add(note.text, note.stars) ? 1 : 0);
          call.on('end', () => callback(null, { count }));
        },
        Chat: (call) => {
          call.on('data', (note) => call.write({ ...note, text: `echo: ${note.text}` }));
          call.on('end', () => call.end());
        },
      }),
    ],
  },
});

// The Notes plugin with @bufbuild/protobuf v2 (protoc-gen-es), through protobufEsService().
//   node dist/examples/typed/protobuf-es-plugin.js   (started by a host, never by hand)
import { protobufEsService } from '../../src/adapters/protobuf-es.js';
import { pluginService, serve } from '../../src/plugin/index.js';
import { Notes } from '../generated/protobuf-es/notes_pb.js';
import { NOTES_COOKIE, NotesStore } from './notes-store.js';

const store = new NotesStore();

const plugin = await serve({
  cookie: NOTES_COOKIE,
  versions: {
    1: [
      pluginService(protobufEsService(Notes), {
        add: (call, callback) => callback(null, { id: store.add(call.request.text, call.request.stars) }),
        list: (call) =>
          store.list(call, call.request.prefix, call.request.limit, () => plugin.logger.info({}, 'list cancelled')),
        upload: (call, callback) => {
          let count = 0;
          call.on('data', (note) => count += store.add(note.text, note.stars) ? 1 : 0);
          call.on('end', () => callback(null, { count }));
        },
        chat: (call) => {
          call.on('data', (note) => call.write({ id: note.id, stars: note.stars, text: `echo: ${note.text}` }));
          call.on('end', () => call.end());
        },
      }),
    ],
  },
});

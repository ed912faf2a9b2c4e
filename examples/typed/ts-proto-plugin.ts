// The Notes plugin with ts-proto's definitions (outputServices=grpc-js): handlers typed by pluginService().
//   node dist/examples/typed/ts-proto-plugin.js   (started by a host, never by hand)
import { pluginService, serve } from '../../src/plugin/index.js';
import { NotesService } from '../generated/ts-proto/notes.js';
import { NOTES_COOKIE, NotesStore } from './notes-store.js';

const store = new NotesStore();

const plugin = await serve({
  cookie: NOTES_COOKIE,
  versions: {
    1: [
      pluginService(NotesService, {
        add: (call, callback) => callback(null, { id: store.add(call.request.text, call.request.stars) }),
        list: (call) =>
          store.list(call, call.request.prefix, call.request.limit, () => plugin.logger.info({}, 'list cancelled')),
        upload: (call, callback) => {
          let count = 0;
          call.on('data', (note) => count += store.add(note.text, note.stars) ? 1 : 0);
          call.on('end', () => callback(null, { count }));
        },
        chat: (call) => {
          call.on('data', (note) => call.write({ ...note, text: `echo: ${note.text}` }));
          call.on('end', () => call.end());
        },
      }),
    ],
  },
});

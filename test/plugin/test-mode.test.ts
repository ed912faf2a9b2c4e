// The in-process test mode: a plugin's services through the real serve(), with a typed host client,
// no process spawned.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import test from 'ava';
import { isGatehouseError, pluginService, type PluginService } from '../../src/index.js';
import { testPlugin, type TestPlugin } from '../../src/testing.js';
import type { ProtoGrpcType } from '../../examples/generated/proto-loader/notes.js';
import { KVService } from '../../examples/generated/ts-proto/kv.js';
import { NotesClient, NotesService } from '../../examples/generated/ts-proto/notes.js';
import { NotesStore } from '../../examples/typed/notes-store.js';
import { recordingLogger } from '../helpers/recording-logger.js';

const notesProto = fileURLToPath(new URL('../../../examples/typed/notes.proto', import.meta.url));

function notesService(store: NotesStore, onCancelled: () => void) {
  return pluginService(NotesService, {
    add: (call, callback) => callback(null, { id: store.add(call.request.text, call.request.stars) }),
    list: (call) => store.list(call, call.request.prefix, call.request.limit, onCancelled),
    upload: (_call, callback) => callback(null, { count: 0 }),
    chat: (call) => call.end(),
  });
}

test('testPlugin serves through serve() in this process, with a typed client over pinned mTLS', async (t) => {
  let cancelled = 0;
  const children = process.getActiveResourcesInfo().filter((r) => r === 'ProcessWrap').length;
  await using plugin = await testPlugin({ versions: { 1: [notesService(new NotesStore(), () => cancelled++)] } });
  t.is(process.getActiveResourcesInfo().filter((r) => r === 'ProcessWrap').length, children, 'no process spawned');
  t.is(plugin.protocolVersion, 1);
  const notes = plugin.client(NotesService);
  t.is((await notes.add({ id: '', text: 'hello', stars: 1 })).id, 'n1');
  const texts: string[] = [];
  for await (const note of notes.list({ prefix: 'h', limit: 5 })) texts.push(note.text);
  t.deepEqual(texts, ['hello']);
  for await (const _note of notes.list({ prefix: '', limit: 0 })) break;
  for (let i = 0; i < 500 && cancelled === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  t.is(cancelled, 1, 'break cancelled the stream on the plugin side');
});

test('testPlugin negotiates versions, runs several plugins at once, and passes serve() warnings to its logger', async (t) => {
  const logger = recordingLogger();
  const misspelt = { definition: NotesService, implementation: { add: () => {}, lisst: () => {} } } as unknown as PluginService;
  const [one, two] = await Promise.all([
    testPlugin({ versions: { 1: [notesService(new NotesStore(), () => {})], 2: [misspelt] }, protocolVersions: [1] }),
    testPlugin({ versions: { 2: [misspelt] }, logger }),
  ]);
  try {
    t.is(one?.protocolVersion, 1);
    t.is(two?.protocolVersion, 2);
    t.true(logger.records.some((r) => r.level === 'warn' && r.message.includes('has lisst')));
    const failed = await t.throwsAsync(two!.client(NotesService).list({ prefix: '', limit: 1 })[Symbol.asyncIterator]().next());
    t.true(isGatehouseError(failed, 'CALL_FAILED'));
    t.regex(failed?.message ?? '', /UNIMPLEMENTED/);
  } finally {
    await one?.close();
    await two?.close();
  }
});

test('serve() given a version list entry that is not a service with its handlers is INVALID_OPTIONS naming it', async (t) => {
  // The bare definition, as a Go plugin's PluginSet names a plugin: serve() needs its handlers too.
  for (const [entry, named] of [
    [KVService, /serve\(\) versions\[1\]\[0\]: expected \{ definition, implementation \}/],
    [{ definition: 'kv.KV', implementation: {} }, /serve\(\) versions\[1\]\[0\]/],
  ] as const) {
    const error = await t.throwsAsync(testPlugin({ versions: { 1: [entry as unknown as PluginService] } }));
    t.true(isGatehouseError(error, 'INVALID_OPTIONS'), String(error));
    t.regex(error?.message ?? '', named);
  }
});

test('testPlugin gives a grpc-js client, for the client and bidi streaming methods the typed client does not offer', async (t) => {
  const notes = pluginService(NotesService, {
    add: (_call, callback) => callback(null, { id: 'n1' }),
    list: (call) => call.end(),
    upload: (call, callback) => {
      let count = 0;
      call.on('data', () => count++);
      call.on('end', () => callback(null, { count }));
    },
    chat: (call) => {
      call.on('data', (note: { text: string }) => call.write({ id: '', text: note.text.toUpperCase(), stars: 0 }));
      call.on('end', () => call.end());
    },
  });
  await using plugin = await testPlugin({ versions: { 1: [notes] } });
  const client = plugin.grpcClient(NotesClient);
  try {
    const summary = await new Promise<{ count: number }>((resolve, reject) => {
      const upload = client.upload((error, value) => (error ? reject(error) : resolve(value!)));
      upload.write({ id: '', text: 'a', stars: 0 });
      upload.write({ id: '', text: 'b', stars: 0 });
      upload.end();
    });
    t.is(summary.count, 2);
    const replies = await new Promise<string[]>((resolve, reject) => {
      const chat = client.chat();
      const texts: string[] = [];
      chat.on('data', (note: { text: string }) => texts.push(note.text));
      chat.on('end', () => resolve(texts));
      chat.on('error', reject);
      chat.write({ id: '', text: 'hi', stars: 0 });
      chat.end();
    });
    t.deepEqual(replies, ['HI']);
  } finally {
    client.close();
  }
});

test("testPlugin's broker is the host's side: a handler calls back a service the test serves through it", async (t) => {
  // serve() gives the plugin its broker once it serves: the handler reaches it through this.
  const runtime: { served?: TestPlugin['served'] } = {};
  const notes = pluginService(NotesService, {
    add: (call, callback) => {
      void (async () => {
        const connection = await runtime.served!.broker.dial(Number(call.metadata.get('kv-broker-id')[0]), { timeoutMs: 5000 });
        try {
          await connection.client(KVService).put({ key: 'note', value: Buffer.from(call.request.text) });
        } finally {
          connection.close();
        }
        callback(null, { id: 'n1' });
      })().catch((error: unknown) => callback({ code: grpc.status.UNAVAILABLE, details: String(error) }));
    },
    list: (call) => call.end(),
    upload: (_call, callback) => callback(null, { count: 0 }),
    chat: (call) => call.end(),
  });
  await using plugin = await testPlugin({ versions: { 1: [notes] } });
  runtime.served = plugin.served;
  const stored = new Map<string, string>();
  const id = await plugin.broker.serve([
    pluginService(KVService, {
      get: (_call, callback) => callback(null, { value: new Uint8Array(0) }),
      put: (call, callback) => {
        stored.set(call.request.key, Buffer.from(call.request.value).toString());
        callback(null, {});
      },
    }),
  ]);
  const metadata = new grpc.Metadata();
  metadata.set('kv-broker-id', String(id));
  t.is((await plugin.client(NotesService).add({ id: '', text: 'hello', stars: 0 }, { metadata, timeoutMs: 10_000 })).id, 'n1');
  t.is(stored.get('note'), 'hello');
});

test('closing a test plugin whose broker is open leaves no call for its shutdown to cut', async (t) => {
  const logger = recordingLogger();
  const plugin = await testPlugin({ versions: { 1: [notesService(new NotesStore(), () => {})] }, logger });
  plugin.broker.nextId();
  await plugin.client(NotesService).add({ id: '', text: 'x', stars: 0 });
  await plugin.close();
  t.deepEqual(logger.records.filter((r) => r.level === 'warn').map((r) => r.message), []);
});

test("a brokered connection takes what plugin.client() takes: proto-loader's proto.pkg.Service, and a generated client for grpcClient()", async (t) => {
  const proto = grpc.loadPackageDefinition(loadSync(notesProto, { keepCase: true, longs: String, defaults: true, oneofs: true })) as unknown as ProtoGrpcType;
  await using plugin = await testPlugin({ versions: { 1: [] } });
  const id = await plugin.served.broker.serve([notesService(new NotesStore(), () => {})]);
  const connection = await plugin.broker.dial(id, { timeoutMs: 10_000 });
  try {
    t.is((await connection.client(proto.notes.Notes).Add({ text: 'hello', stars: 1 })).id, 'n1');
    const client = connection.grpcClient(NotesClient);
    const summary = await new Promise<{ count: number }>((resolve, reject) => {
      const upload = client.upload((error, value) => (error ? reject(error) : resolve(value!)));
      upload.end();
    });
    t.is(summary.count, 0);
    client.close();
  } finally {
    connection.close();
  }
});

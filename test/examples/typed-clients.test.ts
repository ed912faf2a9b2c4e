// The typed client with each generator's output: the Notes plugins of examples/typed, launched for
// real, called through plugin.client() with ts-proto, proto-loader-gen-types and protobuf-es types.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import test from 'ava';
import { protobufEsService } from '../../src/adapters/protobuf-es.js';
import { isGatehouseError, launch, pluginService, type Plugin, type PluginService, type ServiceClient, type StreamingUnavailable } from '../../src/index.js';
import { Notes as EsNotes } from '../../examples/generated/protobuf-es/notes_pb.js';
import type { ProtoGrpcType } from '../../examples/generated/proto-loader/notes.js';
import type { Note__Output } from '../../examples/generated/proto-loader/notes/Note.js';
import type { Query } from '../../examples/generated/proto-loader/notes/Query.js';
import { NotesService, type Note } from '../../examples/generated/ts-proto/notes.js';
import { NOTES_COOKIE } from '../../examples/typed/notes-store.js';
import { recordingLogger } from '../helpers/recording-logger.js';

const script = (name: string) => fileURLToPath(new URL(`../../examples/typed/${name}.js`, import.meta.url));
const notesProto = fileURLToPath(new URL('../../../examples/typed/notes.proto', import.meta.url));
const proto = grpc.loadPackageDefinition(loadSync(notesProto, { keepCase: true, longs: String, defaults: true, oneofs: true })) as unknown as ProtoGrpcType;

// Compile-time facts: requests take the input type, responses are the output type, server streams are
// AsyncIterables, and client or bidi streaming is a type error.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type TsProtoClient = ServiceClient<typeof NotesService>;
const tsProtoTypes: [
  Equal<Parameters<TsProtoClient['add']>[0], Note>,
  Equal<ReturnType<TsProtoClient['list']>, AsyncIterable<Note>>,
] = [true, true];
type LoaderClient = ServiceClient<ProtoGrpcType['notes']['Notes']['service'], InstanceType<ProtoGrpcType['notes']['Notes']>>;
const loaderTypes: [
  Equal<Parameters<LoaderClient['List']>[0], Query>,
  Equal<ReturnType<LoaderClient['List']>, AsyncIterable<Note__Output>>,
  Equal<LoaderClient['Upload'], StreamingUnavailable>,
  Equal<keyof LoaderClient, 'Add' | 'List' | 'Upload' | 'Chat'>,
] = [true, true, true, true];
void tsProtoTypes;
void loaderTypes;
function typeErrors(client: TsProtoClient, loader: LoaderClient): void {
  // @ts-expect-error proto-loader's definitions have an index signature; a misspelt method is an error all the same
  void loader.Ad({ text: 'x' });
  // @ts-expect-error client streaming, known from the generated client interface
  void loader.Upload({});
  pluginService(proto.notes.Notes, {
    Add: (_call, callback) => callback(null, {}),
    List: (call) => call.end(),
    Upload: (_call, callback) => callback(null, {}),
    Chat: (call) => call.end(),
    // @ts-expect-error a misspelt handler for proto-loader's definitions too
    Lisst: () => {},
  });
  // @ts-expect-error client streaming is not offered by plugin.client()
  void client.upload({});
  // @ts-expect-error a request of the wrong type
  void client.add({ text: 5 });
  // @ts-expect-error a misspelt method (lisst) is a type error, not UNIMPLEMENTED at call time
  pluginService(NotesService, {
    add: (_call, callback) => callback(null, { id: 'x' }),
    list: (call) => call.end(),
    upload: (_call, callback) => callback(null, { count: 0 }),
    chat: (call) => call.end(),
    lisst: (call: unknown) => call,
  });
  const typed: PluginService<typeof NotesService> = {
    definition: NotesService,
    implementation: {
      add: (_call, callback) => callback(null, { id: 'x' }),
      list: (call) => call.end(),
      upload: (_call, callback) => callback(null, { count: 0 }),
      // @ts-expect-error a PluginService<D> written out by hand is checked the same way
      chatt: (call: { end(): void }) => call.end(),
    },
  };
  void typed;
}
void typeErrors;

/** Calls every generator's client the same way; `c` adapts the method names (ts-proto: add, proto-loader: Add). */
interface NotesCalls {
  add(text: string, stars: number): Promise<string>;
  list(prefix: string, limit: number, signal?: AbortSignal): AsyncIterable<{ text: string }>;
}

async function withNotesPlugin(t: import('ava').ExecutionContext, name: string, calls: (plugin: Plugin) => NotesCalls): Promise<void> {
  const logger = recordingLogger();
  await using plugin = await launch({ command: process.execPath, args: [script(name)], cookie: NOTES_COOKIE, logger });
  const notes = calls(plugin);
  t.is(await notes.add('hello', 3), 'n1');
  t.is(await notes.add('help', 1), 'n2');
  await notes.add('other', 0);

  const texts: string[] = [];
  for await (const note of notes.list('hel', 10)) texts.push(note.text);
  t.deepEqual(texts, ['hello', 'help']);

  // An endless stream: `break` must cancel it on the plugin's side.
  let seen = 0;
  for await (const _note of notes.list('', 0)) if (++seen === 5) break;
  t.is(seen, 5);
  await until(() => logger.records.some((r) => r.message.includes('list cancelled')));

  const controller = new AbortController();
  const aborted = await t.throwsAsync(async () => {
    for await (const _note of notes.list('', 0, controller.signal)) controller.abort();
  });
  t.true(isGatehouseError(aborted, 'CALL_ABORTED'), String(aborted));
}

async function until(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('ts-proto: typed unary and server-streaming calls, break cancels, signal aborts', async (t) => {
  await withNotesPlugin(t, 'ts-proto-plugin', (plugin) => {
    const client = plugin.client(NotesService);
    return {
      add: async (text, stars) => (await client.add({ id: '', text, stars })).id,
      list: (prefix, limit, signal) => client.list({ prefix, limit }, signal ? { signal } : {}),
    };
  });
});

test('proto-loader-gen-types: typed through proto.pkg.Service, streaming included', async (t) => {
  await withNotesPlugin(t, 'proto-loader-plugin', (plugin) => {
    const client = plugin.client(proto.notes.Notes);
    return {
      add: async (text, stars) => (await client.Add({ text, stars })).id,
      list: (prefix, limit, signal) => client.List({ prefix, limit }, signal ? { signal } : {}),
    };
  });
});

test('protobuf-es: typed through protobufEsService()', async (t) => {
  await withNotesPlugin(t, 'protobuf-es-plugin', (plugin) => {
    const client = plugin.client(protobufEsService(EsNotes));
    return {
      add: async (text, stars) => (await client.add({ text, stars })).id,
      list: (prefix, limit, signal) => client.list({ prefix, limit }, signal ? { signal } : {}),
    };
  });
});

test('client() refuses a package object, and client streaming, with INVALID_OPTIONS that says what was expected', async (t) => {
  await using plugin = await launch({ command: process.execPath, args: [script('ts-proto-plugin')], cookie: NOTES_COOKIE });
  const wrong = t.throws(() => plugin.client(proto.notes as never));
  t.true(isGatehouseError(wrong, 'INVALID_OPTIONS'));
  t.regex(wrong?.message ?? '', /expects one gRPC service definition.*package object\? pick one service/);
  const client = plugin.client(NotesService);
  const streaming = await t.throwsAsync((client.upload as unknown as () => Promise<unknown>)());
  t.true(isGatehouseError(streaming, 'INVALID_OPTIONS'));
  t.regex(streaming?.message ?? '', /client-streaming method: use plugin.grpcClient\(\)/);
  // An aborted signal fails a unary call before it is sent.
  const aborted = await t.throwsAsync(client.add({ id: '', text: 'x', stars: 0 }, { signal: AbortSignal.abort() }));
  t.true(isGatehouseError(aborted, 'CALL_ABORTED'));
});

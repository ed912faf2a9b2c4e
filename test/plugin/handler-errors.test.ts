// A handler that throws: grpc-js answers UNKNOWN "Unknown error" and says nothing else, so serve() logs
// the throw, naming the method, where the plugin's author (and its host's logger) can see it.
import test from 'ava';
import { isGatehouseError, pluginService } from '../../src/index.js';
import { testPlugin } from '../../src/testing.js';
import { NotesService } from '../../examples/generated/ts-proto/notes.js';
import { recordingLogger } from '../helpers/recording-logger.js';

test('a handler that throws is logged at error naming the method and the error, and the caller gets UNKNOWN', async (t) => {
  const logger = recordingLogger();
  const notes = pluginService(NotesService, {
    add: () => {
      throw new Error('disk full');
    },
    list: (call) => call.end(),
    upload: (_call, callback) => callback(null, { count: 0 }),
    chat: (call) => call.end(),
  });
  await using plugin = await testPlugin({ versions: { 1: [notes] }, logger });
  const failed = await t.throwsAsync(plugin.client(NotesService).add({ id: '', text: 'x', stars: 0 }));
  t.true(isGatehouseError(failed, 'CALL_FAILED'));
  t.regex(failed?.message ?? '', /UNKNOWN/);
  const record = logger.records.find((r) => r.level === 'error');
  t.truthy(record, 'the throw was logged');
  t.is(record?.fields.method, '/notes.Notes/Add');
  t.regex(String(record?.fields.error), /disk full/);
  t.regex(record?.message ?? '', /notes\.Notes\/Add threw/);
});

test('a throw of a value that cannot be made text is logged too, by its kind', async (t) => {
  const logger = recordingLogger();
  const notes = pluginService(NotesService, {
    add: () => {
      // String() of an object without a prototype throws: the wrapper threw that instead and logged nothing.
      throw Object.create(null) as Error;
    },
    list: (call) => call.end(),
    upload: (_call, callback) => callback(null, { count: 0 }),
    chat: (call) => call.end(),
  });
  await using plugin = await testPlugin({ versions: { 1: [notes] }, logger });
  await t.throwsAsync(plugin.client(NotesService).add({ id: '', text: 'x', stars: 0 }));
  t.regex(logger.records.find((r) => r.level === 'error')?.message ?? '', /notes\.Notes\/Add threw: \[object Object\]/);
});

test('a handler that answers through its callback logs nothing', async (t) => {
  const logger = recordingLogger();
  const notes = pluginService(NotesService, {
    add: (_call, callback) => callback({ code: 9, details: 'not now' }),
    list: (call) => call.end(),
    upload: (_call, callback) => callback(null, { count: 0 }),
    chat: (call) => call.end(),
  });
  await using plugin = await testPlugin({ versions: { 1: [notes] }, logger });
  const failed = await t.throwsAsync(plugin.client(NotesService).add({ id: '', text: 'x', stars: 0 }));
  t.regex(failed?.message ?? '', /FAILED_PRECONDITION: not now/);
  t.deepEqual(logger.records.filter((r) => r.level === 'error'), []);
});

test('an implementation whose handlers are class methods using `this` is served as before', async (t) => {
  class Notes {
    private next = 1;
    add(_call: unknown, callback: (error: null, value: { id: string }) => void): void {
      callback(null, { id: `n${this.next++}` });
    }
    list(call: { end(): void }): void {
      call.end();
    }
    upload(_call: unknown, callback: (error: null, value: { count: number }) => void): void {
      callback(null, { count: 0 });
    }
    chat(call: { end(): void }): void {
      call.end();
    }
  }
  await using plugin = await testPlugin({ versions: { 1: [pluginService(NotesService, new Notes())] } });
  const client = plugin.client(NotesService);
  t.is((await client.add({ id: '', text: 'x', stars: 0 })).id, 'n1');
  t.is((await client.add({ id: '', text: 'y', stars: 0 })).id, 'n2');
});

// serve()'s reflection under both names, answering from proto-loader's descriptors or a FileDescriptorSet,
// read on first need.
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import test from 'ava';
import { launch } from '../../src/index.js';
import { checkDescriptorSet, reflectionServices } from '../../src/plugin/reflection.js';
import type { PluginService } from '../../src/transport/service.js';
import { fileSymbols } from '../../src/transport/file-descriptors.js';
import {
  REFLECTION_V1,
  REFLECTION_V1ALPHA,
  reflectionService,
  type ReflectionQuery,
  type ReflectionResponse,
} from '../../src/transport/reflection-protocol.js';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { fileDescriptorSet } from '../../examples/generated/ts-proto/kv.descriptor-set.js';
import { KVService } from '../../examples/generated/ts-proto/kv.js';
import { kvPluginScript } from '../helpers/paths.js';

for (const name of [REFLECTION_V1ALPHA, REFLECTION_V1] as const) {
  test(`${name}: lists the services and sends the file that declares a symbol`, async (t) => {
    await using plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE });
    const method = reflectionService(name).ServerReflectionInfo;
    const call = plugin.grpcClient({ ServerReflectionInfo: method }).makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize);
    const queries: ReflectionQuery[] = [
      { kind: 'list_services' },
      { kind: 'file_containing_symbol', value: 'kv.KV.Get' },
      { kind: 'file_by_filename', value: 'nope.proto' },
    ];
    const responses: ReflectionResponse[] = [];
    await new Promise<void>((resolve, reject) => {
      call.on('data', (response: ReflectionResponse) => responses.push(response));
      call.on('error', reject);
      call.on('end', resolve);
      for (const query of queries) call.write({ host: '', query });
      call.end();
    });
    t.deepEqual(responses[0]?.answer, { kind: 'services', names: [REFLECTION_V1, REFLECTION_V1ALPHA, 'kv.KV'].sort() });
    const files = responses[1]?.answer?.kind === 'files' ? responses[1].answer.fileDescriptorProtos : [];
    t.is(files[0] && fileSymbols(files[0]).name, 'kv.proto');
    t.like(responses[2]?.answer, { kind: 'error', code: grpc.status.NOT_FOUND });
  });
}

/** Runs a reflection implementation on a stream of queries without a server: what it writes back. */
function ask(service: PluginService | undefined, queries: ReflectionQuery[]): ReflectionResponse[] {
  const responses: ReflectionResponse[] = [];
  const call = Object.assign(new EventEmitter(), { write: (response: ReflectionResponse) => responses.push(response), end: () => {} });
  (service?.implementation as { ServerReflectionInfo(call: unknown): void }).ServerReflectionInfo(call);
  for (const query of queries) call.emit('data', { host: '', query });
  call.emit('end');
  return responses;
}

/** The KV definition, with a count of the reads of its descriptors. */
function countedKVDefinition(descriptors: () => Buffer[]): { service: PluginService; reads: () => number } {
  let reads = 0;
  const described = {
    get fileDescriptorProtos(): Buffer[] {
      reads++;
      return descriptors();
    },
  };
  const definition = Object.fromEntries(
    Object.entries(loadKVService()).map(([name, method]) => [name, { ...method, requestType: described, responseType: described }]),
  );
  return { service: { definition: definition as grpc.ServiceDefinition, implementation: {} }, reads: () => reads };
}

test('reflection reads the descriptors on the first query that needs them, once, and not before', (t) => {
  const kvFiles = (Object.values(loadKVService())[0] as unknown as { requestType: { fileDescriptorProtos: Buffer[] } }).requestType.fileDescriptorProtos;
  const { service, reads } = countedKVDefinition(() => kvFiles);
  const [reflection] = reflectionServices([service]);
  t.is(reads(), 0, 'building the reflection services (at start) reads no descriptor');
  const listed = ask(reflection, [{ kind: 'list_services' }]);
  t.deepEqual(listed[0]?.answer, { kind: 'services', names: [REFLECTION_V1, REFLECTION_V1ALPHA, 'kv.KV'].sort() });
  t.is(reads(), 0, 'listing the services needs only their names');
  const answers = ask(reflection, [
    { kind: 'file_containing_symbol', value: 'kv.KV.Put' },
    { kind: 'file_by_filename', value: 'kv.proto' },
  ]);
  for (const response of answers) {
    const files = response.answer?.kind === 'files' ? response.answer.fileDescriptorProtos : [];
    t.is(files[0] && fileSymbols(files[0]).name, 'kv.proto');
  }
  const readsAfterFirst = reads();
  t.true(readsAfterFirst > 0);
  ask(reflection, [{ kind: 'file_containing_symbol', value: 'kv.GetRequest' }]);
  t.is(reads(), readsAfterFirst, 'the index is built once');
});

test('a descriptor that does not parse is an INTERNAL answer to the query, not the end of the plugin', (t) => {
  // A message field 4 (a DescriptorProto) that claims more bytes than there are.
  const { service } = countedKVDefinition(() => [Buffer.from([0x0a, 0x01, 0x61, 0x22, 0x7f, 0x00])]);
  const [reflection] = reflectionServices([service]);
  const answers = ask(reflection, [{ kind: 'file_containing_symbol', value: 'kv.KV' }, { kind: 'list_services' }]);
  t.like(answers[0]?.answer, { kind: 'error', code: grpc.status.INTERNAL });
  t.regex(answers[0]?.answer?.kind === 'error' ? answers[0].answer.message : '', /descriptors could not be read/);
  t.like(answers[1]?.answer, { kind: 'services' });
});

test('a FileDescriptorSet describes definitions that carry none (ts-proto)', (t) => {
  // ts-proto's KV definition: no requestType or responseType descriptors.
  const service: PluginService = { definition: KVService as unknown as grpc.ServiceDefinition, implementation: {} };
  const [bare] = reflectionServices([service]);
  t.like(ask(bare, [{ kind: 'file_containing_symbol', value: 'kv.KV' }])[0]?.answer, { kind: 'error', code: grpc.status.NOT_FOUND });

  const [described] = reflectionServices([service], fileDescriptorSet);
  for (const query of [
    { kind: 'file_containing_symbol', value: 'kv.KV' },
    { kind: 'file_containing_symbol', value: 'kv.PutRequest' },
    { kind: 'file_by_filename', value: 'kv.proto' },
  ] as const) {
    const answer = ask(described, [query])[0]?.answer;
    const files = answer?.kind === 'files' ? answer.fileDescriptorProtos : [];
    t.deepEqual(files.map((file) => fileSymbols(file).name), ['kv.proto'], query.value);
  }

  // A set that does not declare the service says so, rather than asking for the set it was given.
  const [other] = reflectionServices([service], Uint8Array.of());
  const answer = ask(other, [{ kind: 'file_containing_symbol', value: 'kv.KV' }])[0]?.answer;
  t.like(answer, { kind: 'error', code: grpc.status.NOT_FOUND });
  t.regex(answer?.kind === 'error' ? answer.message : '', /fileDescriptorSet does not declare it/);
});

test('a set that does not parse fails the queries that need it (INTERNAL), not the start or the listing', (t) => {
  const service: PluginService = { definition: KVService as unknown as grpc.ServiceDefinition, implementation: {} };
  // Field 1 (a file) that claims more bytes than there are.
  const [reflection] = reflectionServices([service], Uint8Array.of(0x0a, 0x7f, 0x00));
  const answers = ask(reflection, [{ kind: 'list_services' }, { kind: 'file_containing_symbol', value: 'kv.KV' }]);
  t.like(answers[0]?.answer, { kind: 'services' });
  t.like(answers[1]?.answer, { kind: 'error', code: grpc.status.INTERNAL });
});

test("serve()'s fileDescriptorSet must be bytes no larger than a message the plugin may send", (t) => {
  t.notThrows(() => checkDescriptorSet(undefined, 10));
  t.notThrows(() => checkDescriptorSet(fileDescriptorSet, fileDescriptorSet.byteLength));
  t.throws(() => checkDescriptorSet('CghrdgoucHJvdG8=', 1024), { code: 'INVALID_OPTIONS', message: /must be the bytes of a FileDescriptorSet/ });
  t.throws(() => checkDescriptorSet(fileDescriptorSet, fileDescriptorSet.byteLength - 1), { code: 'INVALID_OPTIONS', message: /over maxMessageBytes/ });
});

test('any bytes as the set: every query gets an answer (files or an error), never a throw', (t) => {
  const service: PluginService = { definition: KVService as unknown as grpc.ServiceDefinition, implementation: {} };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (set) => {
      const [reflection] = reflectionServices([service], set);
      const answers = ask(reflection, [
        { kind: 'file_containing_symbol', value: 'kv.KV' },
        { kind: 'file_by_filename', value: 'kv.proto' },
      ]);
      return answers.length === 2 && answers.every((response) => response.answer?.kind === 'files' || response.answer?.kind === 'error');
    }),
  );
  t.pass();
});

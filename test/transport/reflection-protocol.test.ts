// The reflection codecs and the descriptor index parse what a peer sends: arbitrary bytes must give a
// value or an Error, never a crash of another kind or a hang; what we write must read back the same.
import fc from 'fast-check';
import test from 'ava';
import { descriptorSetFiles, fileSymbols, DescriptorIndex, MAX_DESCRIPTOR_FILES } from '../../src/transport/file-descriptors.js';
import { reflectionRequestCodec, reflectionResponseCodec, type ReflectionRequest } from '../../src/transport/reflection-protocol.js';
import { Writer } from '../../src/transport/protobuf.js';

const parsesOrThrowsError = (parse: (bytes: Buffer) => unknown) => (bytes: Uint8Array) => {
  try {
    parse(Buffer.from(bytes));
  } catch (error) {
    if (!(error instanceof Error)) throw error;
  }
};

test('reflection requests, responses and file descriptors: arbitrary bytes parse or throw an Error', (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), parsesOrThrowsError((b) => reflectionRequestCodec.decode(b))));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), parsesOrThrowsError((b) => reflectionResponseCodec.decode(b))));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), parsesOrThrowsError((b) => fileSymbols(b))));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), parsesOrThrowsError((b) => descriptorSetFiles(b).forEach((file) => fileSymbols(file)))));
  t.pass();
});

test('a FileDescriptorSet gives its files in order, other fields skipped, and at most MAX_DESCRIPTOR_FILES of them', (t) => {
  const set = (count: number): Uint8Array => {
    const writer = Writer.create();
    // An unknown varint field first: skipped, as a parser of a newer descriptor.proto would.
    writer.uint32((2 << 3) | 0).uint32(7);
    for (let i = 0; i < count; i++) writer.uint32((1 << 3) | 2).bytes(Writer.create().uint32((1 << 3) | 2).string(`f${i}.proto`).finish());
    return writer.finish();
  };
  t.deepEqual(descriptorSetFiles(set(3)).map((file) => fileSymbols(file).name), ['f0.proto', 'f1.proto', 'f2.proto']);
  t.is(descriptorSetFiles(set(MAX_DESCRIPTOR_FILES)).length, MAX_DESCRIPTOR_FILES);
  t.throws(() => descriptorSetFiles(set(MAX_DESCRIPTOR_FILES + 1)), { code: 'REFLECTION_FAILED', message: /over 1024 files/ });
});

test('reflection requests read back as written', (t) => {
  const query = fc.oneof(
    fc.constant({ kind: 'list_services' as const }),
    fc.record({ kind: fc.constantFrom('file_by_filename' as const, 'file_containing_symbol' as const), value: fc.string() }),
  );
  fc.assert(
    fc.property(fc.record({ host: fc.string(), query }), (request: ReflectionRequest) => {
      t.deepEqual(reflectionRequestCodec.decode(reflectionRequestCodec.encode(request)), request);
    }),
  );
});

test('the descriptor index finds files by symbol, nested and method names included, with their imports once', (t) => {
  const field = (writer: Writer, number: number, bytes: Uint8Array | string): Writer =>
    typeof bytes === 'string' ? writer.uint32((number << 3) | 2).string(bytes) : writer.uint32((number << 3) | 2).bytes(bytes);
  const named = (name: string, extra?: (w: Writer) => void): Uint8Array => {
    const w = field(Writer.create(), 1, name);
    extra?.(w);
    return w.finish();
  };
  const common = Buffer.from(field(field(Writer.create(), 1, 'common.proto'), 2, 'c').finish());
  const main = Writer.create();
  field(main, 1, 'main.proto');
  field(main, 2, 'pkg');
  field(main, 3, 'common.proto');
  field(main, 4, named('Outer', (w) => field(w, 3, named('Inner'))));
  field(main, 5, named('Color'));
  field(main, 6, named('Svc', (w) => field(w, 2, named('Do'))));
  const index = new DescriptorIndex();
  index.add(Buffer.from(main.finish()));
  index.add(common);
  t.deepEqual(fileSymbols(Buffer.from(main.finish())).symbols, ['pkg.Outer', 'pkg.Outer.Inner', 'pkg.Color', 'pkg.Svc', 'pkg.Svc.Do']);
  for (const symbol of ['pkg.Outer.Inner', '.pkg.Svc', 'pkg.Svc.Do', 'pkg.Color']) t.is(index.fileOfSymbol(symbol), 'main.proto');
  t.is(index.withDependencies('main.proto')?.length, 2);
  t.is(index.fileOfSymbol('pkg.Nope'), undefined);
});

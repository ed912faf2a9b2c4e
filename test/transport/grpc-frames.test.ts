import test from 'ava';
import fc from 'fast-check';
import { FrameError, frameMessage, MessageDecoder } from '../../src/transport/grpc-frames.js';

/** Feeds `bytes` to a decoder cut at the given offsets; the messages, or the FrameError it threw. */
function decode(bytes: Buffer, cuts: number[], max = 1 << 20): Buffer[] | FrameError {
  const decoder = new MessageDecoder(max);
  const messages: Buffer[] = [];
  let start = 0;
  try {
    for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length]) {
      messages.push(...decoder.push(bytes.subarray(start, cut)).map((m) => Buffer.from(m)));
      start = cut;
    }
  } catch (error) {
    if (error instanceof FrameError) return error;
    throw error;
  }
  return messages;
}

test('grpc frames: any messages, split anywhere, come back whole and in order', (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 6 }), fc.array(fc.nat(2000)), (messages, cuts) => {
      const bytes = Buffer.concat(messages.map((m) => frameMessage(m)));
      const decoded = decode(bytes, cuts);
      t.false(decoded instanceof FrameError);
      t.deepEqual((decoded as Buffer[]).map((m) => [...m]), messages.map((m) => [...m]));
    }),
  );
});

test('grpc frames: split at every byte, an empty message and a full one still arrive', (t) => {
  const bytes = Buffer.concat([frameMessage(Buffer.alloc(0)), frameMessage(Buffer.from('hello'))]);
  for (let cut = 0; cut <= bytes.length; cut++) t.deepEqual(decode(bytes, [cut]), [Buffer.alloc(0), Buffer.from('hello')]);
  const everyByte = Array.from({ length: bytes.length }, (_, i) => i);
  t.deepEqual(decode(bytes, everyByte), [Buffer.alloc(0), Buffer.from('hello')]);
});

test('grpc frames: a declared length beyond the limit fails before any of it is buffered', (t) => {
  // Attack: a peer declaring a 4 GiB message to make the host allocate it.
  const prefix = Buffer.from([0, 0xff, 0xff, 0xff, 0xff]);
  const error = decode(prefix, [], 1024);
  t.true(error instanceof FrameError);
  t.is((error as FrameError).grpcCode, 8);
  t.regex((error as FrameError).message, /larger than max \(4294967295 vs\. 1024\)/);
  t.deepEqual(decode(frameMessage(Buffer.alloc(1024)), [], 1024), [Buffer.alloc(1024)], 'exactly the limit is fine');
});

test('grpc frames: compressed messages and unknown flags are refused, since no compression was offered', (t) => {
  for (const flags of [1, 2, 0x80, 3]) {
    const bytes = Buffer.from([flags, 0, 0, 0, 1, 42]);
    const error = decode(bytes, []);
    t.true(error instanceof FrameError, `flags ${flags}`);
    t.is((error as FrameError).grpcCode, 13);
  }
});

test('grpc frames: arbitrary bytes give messages or a FrameError, never anything else', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(200)), (bytes, cuts) => {
      const result = decode(Buffer.from(bytes), cuts, 64);
      t.true(Array.isArray(result) || result instanceof FrameError);
    }),
  );
});

test('grpc frames: messages larger than the first buffer, split anywhere, come back whole (the buffer grows as they arrive)', (t) => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 300_000 }), { minLength: 1, maxLength: 3 }), fc.array(fc.nat(1_000_000), { maxLength: 40 }), (lengths, cuts) => {
      const messages = lengths.map((length, i) => Buffer.alloc(length, i + 1).fill(0xa5, 0, Math.min(length, 7)));
      const decoded = decode(Buffer.concat(messages.map((m) => frameMessage(m))), cuts);
      t.false(decoded instanceof FrameError);
      t.true((decoded as Buffer[]).every((m, i) => m.equals(messages[i]!)) && (decoded as Buffer[]).length === messages.length);
    }),
    { numRuns: 60 },
  );
});

test('grpc frames: a declared length reserves no memory before the message arrives (a 5-byte prefix cannot cost 16 MiB)', (t) => {
  const declared = Buffer.alloc(6);
  declared.writeUInt32BE(16 * 1024 * 1024 - 1, 1);
  const before = process.memoryUsage().arrayBuffers;
  // Kept alive to the end: each holds what it reserved for the message it was promised.
  const decoders = Array.from({ length: 16 }, () => new MessageDecoder(16 * 1024 * 1024));
  for (const decoder of decoders) t.deepEqual(decoder.push(declared), []);
  const grown = process.memoryUsage().arrayBuffers - before;
  t.true(grown < 8 * 1024 * 1024, `16 stalled messages of 16 MiB declared hold ${grown} bytes`);
  t.true(decoders.every((decoder) => !decoder.idle));
});

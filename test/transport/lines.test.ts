import test from 'ava';
import fc from 'fast-check';
import { GatehouseError } from '../../src/errors.js';
import { LineSplitter } from '../../src/transport/lines.js';

interface Line {
  line: string;
  truncated: boolean;
}

function collect(maxLineBytes: number, chunks: readonly (Buffer | string)[], end = true): Line[] {
  const lines: Line[] = [];
  const splitter = new LineSplitter({ maxLineBytes, onLine: (line, truncated) => lines.push({ line, truncated }) });
  for (const chunk of chunks) splitter.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
  if (end) splitter.end();
  return lines;
}

const whole = (line: string): Line => ({ line, truncated: false });
const cut = (line: string): Line => ({ line, truncated: true });

/**
 * The specification written the simple way: split the whole input at "\n", strip one "\r" before each
 * "\n", keep a final unterminated piece, and cut overlong pieces where a streaming UTF-8 decoder would
 * stop (it holds back an unfinished character).
 */
function reference(input: Buffer, maxLineBytes: number): Line[] {
  const pieces: { bytes: Buffer; terminated: boolean }[] = [];
  let start = 0;
  for (;;) {
    const newline = input.indexOf(0x0a, start);
    if (newline === -1) break;
    pieces.push({ bytes: input.subarray(start, newline), terminated: true });
    start = newline + 1;
  }
  if (start < input.length) pieces.push({ bytes: input.subarray(start), terminated: false });
  return pieces.map(({ bytes, terminated }) => {
    const content = terminated && bytes.at(-1) === 0x0d ? bytes.subarray(0, -1) : bytes;
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    if (content.length <= maxLineBytes) return whole(decoder.decode(content));
    return cut(decoder.decode(content.subarray(0, maxLineBytes), { stream: true }));
  });
}

test('"\\n" ends a line', (t) => {
  t.deepEqual(collect(64, ['one\ntwo\n']), [whole('one'), whole('two')]);
});

test('"\\r\\n" ends a line too, and the "\\r" is not part of it', (t) => {
  t.deepEqual(collect(64, ['one\r\ntwo\r\n']), [whole('one'), whole('two')]);
});

test('a "\\r" not followed by "\\n" stays in the line', (t) => {
  t.deepEqual(collect(64, ['a\rb\n', 'c\r']), [whole('a\rb'), whole('c\r')]);
});

test('empty lines are delivered', (t) => {
  t.deepEqual(collect(64, ['\n\r\n\n']), [whole(''), whole(''), whole('')]);
});

test('end() flushes a final unterminated line', (t) => {
  t.deepEqual(collect(64, ['one\ntw', 'o']), [whole('one'), whole('two')]);
  t.deepEqual(collect(64, ['one\ntwo'], false), [whole('one')]);
});

test('end() after a terminated line delivers nothing more', (t) => {
  t.deepEqual(collect(64, ['one\n']), [whole('one')]);
});

test('a line split across chunks is delivered once, whole', (t) => {
  t.deepEqual(collect(64, ['he', 'll', 'o\r', '\nworld\n']), [whole('hello'), whole('world')]);
});

test('a line of exactly maxLineBytes is not truncated', (t) => {
  t.deepEqual(collect(8, ['12345678\n']), [whole('12345678')]);
});

test('a line of exactly maxLineBytes ending in "\\r\\n" is not truncated, even when split before "\\n"', (t) => {
  t.deepEqual(collect(8, ['12345678\r', '\n']), [whole('12345678')]);
  t.deepEqual(collect(8, ['12345678\r\nnext\n']), [whole('12345678'), whole('next')]);
});

test('an overlong line is delivered once, cut to maxLineBytes, with truncated=true', (t) => {
  t.deepEqual(collect(8, ['123456789\n']), [cut('12345678')]);
  t.deepEqual(collect(8, ['1234567890abcdef\nnext\n']), [cut('12345678'), whole('next')]);
});

test('the rest of an overlong line is discarded up to the next "\\n", across chunks', (t) => {
  const lines = collect(8, ['1234567890', 'more junk', ' and more', '\nnext\n']);
  t.deepEqual(lines, [cut('12345678'), whole('next')]);
});

test('an overlong final line without "\\n" is delivered once, truncated', (t) => {
  t.deepEqual(collect(8, ['123456789']), [cut('12345678')]);
  t.deepEqual(collect(8, ['1234567890abcdef', 'ghij']), [cut('12345678')]);
});

test('a truncated line is cut at a character boundary, never inside a multi-byte character', (t) => {
  // "€" is three bytes: 4 + 3 = 7 fits, the next "€" would end at byte 10 > 8.
  t.deepEqual(collect(8, ['aaaa€€\n']), [cut('aaaa€')]);
  // "😀" is four bytes: the second one would need bytes 5-8 of a 7-byte limit.
  t.deepEqual(collect(7, ['a😀😀\n']), [cut('a😀')]);
});

test('multi-byte characters split across chunks survive', (t) => {
  const bytes = Buffer.from('é€😀\n', 'utf8');
  const chunks = [...bytes].map((byte) => Buffer.from([byte]));
  t.deepEqual(collect(64, chunks), [whole('é€😀')]);
});

test('invalid UTF-8 becomes U+FFFD instead of an exception', (t) => {
  t.deepEqual(collect(64, [Buffer.from([0x61, 0xff, 0xc3, 0x0a])]), [whole('a\ufffd\ufffd')]);
});

test('a byte-order mark is kept as data', (t) => {
  t.deepEqual(collect(64, [Buffer.from('\ufeffa\n\ufeffb\n', 'utf8')]), [whole('\ufeffa'), whole('\ufeffb')]);
});

test('memory stays bounded: a megabyte without "\\n" buffers at most maxLineBytes + 1 bytes', (t) => {
  const lines: string[] = [];
  const splitter = new LineSplitter({ maxLineBytes: 100, onLine: (line) => lines.push(line) });
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  for (let i = 0; i < 16; i++) {
    splitter.push(chunk);
    t.true(splitter.bufferedBytes <= 101);
  }
  t.is(lines.length, 1);
  t.is(lines[0], 'A'.repeat(100));
});

test('a callback that throws leaves the splitter usable', (t) => {
  const lines: string[] = [];
  const splitter = new LineSplitter({
    maxLineBytes: 16,
    onLine: (line) => {
      lines.push(line);
      if (line === 'boom') throw new Error('callback failed');
    },
  });
  t.throws(() => splitter.push(Buffer.from('boom\n')), { message: 'callback failed' });
  splitter.push(Buffer.from('next\n'));
  t.deepEqual(lines, ['boom', 'next']);
});

test('bytes pushed after end() are ignored', (t) => {
  const lines: string[] = [];
  const splitter = new LineSplitter({ maxLineBytes: 16, onLine: (line) => lines.push(line) });
  splitter.push(Buffer.from('a'));
  splitter.end();
  splitter.push(Buffer.from('b\n'));
  splitter.end();
  t.deepEqual(lines, ['a']);
});

test('bad options are refused with INVALID_OPTIONS', (t) => {
  const onLine = (): void => {};
  for (const maxLineBytes of [0, 3, -1, 1.5, Number.NaN, 2 ** 40]) {
    const error = t.throws(() => new LineSplitter({ maxLineBytes, onLine }), { instanceOf: GatehouseError });
    t.is(error?.code, 'INVALID_OPTIONS');
  }
  const error = t.throws(() => new LineSplitter({ maxLineBytes: 8, onLine: undefined as never }), {
    instanceOf: GatehouseError,
  });
  t.is(error?.code, 'INVALID_OPTIONS');
});

// Inputs biased towards the interesting bytes: newlines, carriage returns, multi-byte leads and
// continuation bytes, and invalid bytes.
const interestingByte = fc.oneof(
  fc.constantFrom(0x0a, 0x0d, 0x41, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xed, 0xe0, 0xf4, 0xff),
  fc.integer({ min: 0, max: 255 }),
);
const input = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.array(interestingByte, { maxLength: 300 }).map((bytes) => Uint8Array.from(bytes)),
  fc.string({ unit: 'binary', maxLength: 100 }).map((s) => new Uint8Array(Buffer.from(s.replace(/x/g, '\r\n'), 'utf8'))),
);

test('property: any chunking yields the same lines as splitting the whole input', (t) => {
  fc.assert(
    fc.property(
      input,
      fc.integer({ min: 4, max: 40 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (raw, maxLineBytes, splitPoints) => {
        const bytes = Buffer.from(raw);
        const points = [...new Set(splitPoints.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let previous = 0;
        for (const point of [...points, bytes.length]) {
          chunks.push(bytes.subarray(previous, point));
          previous = point;
        }
        t.deepEqual(collect(maxLineBytes, chunks), reference(bytes, maxLineBytes));
      },
    ),
  );
});

test('property: never more than maxLineBytes + 1 bytes buffered, and no line longer than maxLineBytes', (t) => {
  fc.assert(
    fc.property(fc.array(input, { maxLength: 10 }), fc.integer({ min: 4, max: 40 }), (chunks, maxLineBytes) => {
      const splitter = new LineSplitter({
        maxLineBytes,
        onLine: (line) => {
          t.true(Buffer.byteLength(line, 'utf8') <= 3 * maxLineBytes && line.length <= maxLineBytes);
        },
      });
      for (const chunk of chunks) {
        splitter.push(Buffer.from(chunk));
        t.true(splitter.bufferedBytes <= maxLineBytes + 1);
      }
      splitter.end();
      t.is(splitter.bufferedBytes, 0);
    }),
  );
});

test('property: a truncated line is always well-formed UTF-8 text (no lone surrogates)', (t) => {
  fc.assert(
    fc.property(input, fc.integer({ min: 4, max: 12 }), (raw, maxLineBytes) => {
      for (const { line } of collect(maxLineBytes, [Buffer.from(raw)])) {
        t.is(Buffer.from(line, 'utf8').toString('utf8'), line);
      }
    }),
  );
});

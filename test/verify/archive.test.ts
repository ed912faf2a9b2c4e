// Release archives are hostile input: a strict ustar reader with limits, and a reproducible writer.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { GatehouseError } from '../../src/errors.js';
import { readArchive, writeArchive, type ArchiveFile } from '../../src/verify/archive.js';
import { tempDir } from '../discover/temp-dir.js';

const run = promisify(execFile);
const TAR = '/usr/bin/tar';
const file = (path: string, text: string, executable = false): ArchiveFile => ({ path, data: Buffer.from(text), executable });

/** Rewrites the first header of a one-file archive (name, type flag, ...) and fixes its checksum. */
function withHeader(edit: (header: Buffer) => void, tail?: Buffer): Buffer {
  const tar = gunzipSync(writeArchive([file('plugin', 'x')]));
  const header = tar.subarray(0, 512);
  edit(header);
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return gzipSync(tail ? Buffer.concat([tar, tail]) : tar);
}

test('written archives are reproducible, read back to the same files, and GNU tar reads them', async (t) => {
  const files = [file('b/plugin.js', 'console.log(1)\n'), file('a', '#!/bin/sh\n', true), file(`${'d'.repeat(120)}/${'n'.repeat(90)}`, 'long path')];
  const archive = writeArchive(files);
  t.deepEqual(writeArchive([...files].reverse()), archive, 'same bytes whatever the order given');
  t.deepEqual(
    readArchive(archive).map((f) => ({ ...f, data: Buffer.from(f.data).toString() })),
    [...files].sort((a, b) => (a.path < b.path ? -1 : 1)).map((f) => ({ ...f, data: f.data.toString() })),
  );
  const dir = await tempDir(t);
  await writeFile(join(dir, 'r.tar.gz'), archive);
  await mkdir(join(dir, 'out'));
  await run(TAR, ['-xzf', join(dir, 'r.tar.gz'), '-C', join(dir, 'out')]);
  t.is(await readFile(join(dir, 'out/b/plugin.js'), 'utf8'), 'console.log(1)\n');
});

test('links, devices, FIFOs and extension headers are refused as ARCHIVE_INVALID', (t) => {
  for (const flag of ['1', '2', '3', '4', '6', 'x', 'g', 'L', 'K']) {
    t.throws(() => readArchive(withHeader((h) => h.write(flag, 156, 'latin1'))), { code: 'ARCHIVE_INVALID', message: /only regular files/ }, flag);
  }
});

test('path traversal, absolute and unnormalised names are refused', (t) => {
  for (const name of ['../evil', 'a/../../evil', '/etc/passwd', './plugin', 'a//b', 'a\\b']) {
    const archive = withHeader((h) => {
      h.fill(0, 0, 100);
      h.write(name, 0, 'utf8');
    });
    t.throws(() => readArchive(archive), { code: 'ARCHIVE_INVALID' }, name);
  }
});

test('gzip bombs, too many entries, duplicates, bad checksums, truncation and trailing data are refused', (t) => {
  const big = writeArchive([file('big', 'x'.repeat(1024 * 1024))]);
  t.true(big.length < 10_000);
  t.throws(() => readArchive(big, { maxBytes: 64 * 1024 }), { code: 'ARCHIVE_TOO_LARGE' });
  const many = writeArchive(Array.from({ length: 11 }, (_, i) => file(`f${i}`, 'x')));
  t.throws(() => readArchive(many, { maxEntries: 10 }), { code: 'ARCHIVE_TOO_LARGE' });
  const tar = gunzipSync(writeArchive([file('a', 'x')]));
  const twice = gzipSync(Buffer.concat([tar.subarray(0, 1024), tar]));
  t.throws(() => readArchive(twice), { code: 'ARCHIVE_INVALID', message: /twice/ });
  const corrupt = Buffer.from(tar);
  corrupt[0] = 0x62;
  t.throws(() => readArchive(gzipSync(corrupt)), { code: 'ARCHIVE_INVALID', message: /checksum/ });
  t.throws(() => readArchive(gzipSync(tar.subarray(0, 700))), { code: 'ARCHIVE_INVALID' });
  t.throws(() => readArchive(gzipSync(Buffer.concat([tar, Buffer.from('hidden')]))), { code: 'ARCHIVE_INVALID', message: /after its end/ });
  t.throws(() => readArchive(Buffer.from('not gzip')), { code: 'ARCHIVE_INVALID' });
});

test('a file that is also the directory of another entry is refused: extracting both would fail half-way or write through it', (t) => {
  for (const paths of [['a', 'a/b'], ['a/b/c', 'a'], ['a/b', 'a/b/c/d']]) {
    t.throws(() => readArchive(writeArchive(paths.map((path) => file(path, 'x')))), { code: 'ARCHIVE_INVALID', message: /both a file and a directory/ }, paths.join(' '));
  }
  t.is(readArchive(writeArchive([file('a/b', 'x'), file('a/c', 'y'), file('ab', 'z')])).length, 3, 'siblings and shared prefixes are fine');
});

test('property: any archive, as written or truncated or with bytes flipped, reads or fails with a GatehouseError only', (t) => {
  const files = fc.uniqueArray(
    // A tiny alphabet, so that one path is often the directory of another.
    fc.record({ path: fc.stringMatching(/^[ab]{1,2}(\/[ab]{1,2}){0,2}$/), data: fc.uint8Array({ maxLength: 700 }), executable: fc.boolean() }),
    { maxLength: 4, selector: (f) => f.path },
  );
  /** What is read can be extracted as it is: no `..`, and no file stands where another's directory goes. */
  const readsSafely = (input: Buffer) => {
    try {
      const read = readArchive(input);
      const paths = new Set(read.map((entry) => entry.path));
      for (const entry of read) {
        t.false(entry.path.split('/').includes('..'));
        const parents = entry.path.split('/').slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join('/'));
        if (parents.some((parent) => paths.has(parent))) throw new Error(`${entry.path} and its parent, a file, were both read`);
      }
    } catch (error) {
      if (!(error instanceof GatehouseError)) throw error;
    }
  };
  fc.assert(
    fc.property(files, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.option(fc.nat()), (entries, flips, cut) => {
      const tar = gunzipSync(writeArchive(entries));
      readsSafely(gzipSync(tar));
      for (const [at, value] of flips) tar[at % tar.length] = value;
      readsSafely(gzipSync(cut === null ? tar : tar.subarray(0, cut % (tar.length + 1))));
    }),
  );
  t.pass();
});

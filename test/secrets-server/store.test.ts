// The server's append-only store: what was acknowledged survives a reopen, a torn last line is dropped,
// damage elsewhere is refused, and compaction keeps exactly the live data.
import { createHash } from 'node:crypto';
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import fc from 'fast-check';
import { ServerError } from '../../examples/secrets-server/errors.js';
import { mountScope } from '../../examples/secrets-server/mounts.js';
import { LogStore } from '../../examples/secrets-server/store.js';
import { tempDir } from '../discover/temp-dir.js';

test('store: any sequence of puts and deletes reads back the same after a reopen', async (t) => {
  const dir = await tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c/d', 'ünï', 'e f'), fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null })), { maxLength: 30 }),
      async (ops) => {
        const path = join(dir, `store-${run++}.log`);
        const store = await LogStore.open(path);
        const model = new Map<string, Buffer>();
        for (const [key, value] of ops) {
          if (value === null) {
            await store.delete(key);
            model.delete(key);
          } else {
            await store.put(key, Buffer.from(value));
            model.set(key, Buffer.from(value));
          }
        }
        await store.close();
        const reopened = await LogStore.open(path);
        const seen = reopened.list('').map((key) => [key, reopened.get(key)]);
        await reopened.close();
        const expected = [...model].sort(([a], [b]) => (a < b ? -1 : 1));
        if (!isDeepStrictEqual(seen, expected)) throw new Error(`read back ${JSON.stringify(seen)}, expected ${JSON.stringify(expected)}`);
      },
    ),
    { numRuns: 40 },
  );
  t.pass();
});

test('store: a torn last line (a crash mid-append) is dropped; earlier writes stay', async (t) => {
  const path = join(await tempDir(t), 'store.log');
  const store = await LogStore.open(path);
  await store.put('kept', Buffer.from('yes'));
  await store.close();
  await appendFile(path, '0123456789abcdef {"k":"torn","v":"AAA');
  const reopened = await LogStore.open(path);
  t.is(reopened.get('kept')?.toString(), 'yes');
  t.is(reopened.get('torn'), undefined);
  await reopened.put('after', Buffer.from('ok'));
  await reopened.close();
  const again = await LogStore.open(path);
  t.is(again.get('after')?.toString(), 'ok', 'appends after the dropped line are readable');
  await again.close();
});

test('store: a damaged line before the end is refused, not skipped', async (t) => {
  const path = join(await tempDir(t), 'store.log');
  const store = await LogStore.open(path);
  await store.put('a', Buffer.from('1'));
  await store.put('b', Buffer.from('2'));
  await store.close();
  const text = await readFile(path, 'utf8');
  await writeFile(path, text.replace('"a"', '"z"'));
  const error = await t.throwsAsync(LogStore.open(path));
  t.true(error instanceof ServerError && error.code === 'storage_damaged', String(error));
});

test('store: overwriting past the threshold compacts the log to the live data', async (t) => {
  const path = join(await tempDir(t), 'store.log');
  const store = await LogStore.open(path);
  const big = Buffer.alloc(512 * 1024, 7);
  for (let i = 0; i < 12; i++) await store.put('big', big);
  await store.put('small', Buffer.from('s'));
  await store.close();
  t.true((await stat(path)).size < 2 * 1024 * 1024, 'dead versions were dropped');
  const reopened = await LogStore.open(path);
  t.deepEqual(reopened.get('big'), big);
  t.is(reopened.get('small')?.toString(), 's');
  await reopened.close();
});

test('store: keys and values past their limits are refused with clear codes', async (t) => {
  const store = await LogStore.open(join(await tempDir(t), 'store.log'));
  t.teardown(() => store.close());
  await t.throwsAsync(store.put('', Buffer.from('x')), { instanceOf: ServerError, message: /key/ });
  await t.throwsAsync(store.put('a\nb', Buffer.from('x')), { instanceOf: ServerError });
  await t.throwsAsync(store.put('k', Buffer.alloc(1024 * 1024 + 1)), { instanceOf: ServerError, message: /more than/ });
});

test('store: a line longer than any record the store writes is refused as damage, not read whole', async (t) => {
  const path = join(await tempDir(t), 'store.log');
  const store = await LogStore.open(path);
  await store.put('a', Buffer.from('1'));
  await store.close();
  // Checksummed like a real record, so only its length gives it away: 2 MiB where 1 MiB is the most a value may be.
  const json = JSON.stringify({ k: 'b', v: Buffer.alloc(2 * 1024 * 1024).toString('base64') });
  await appendFile(path, `${createHash('sha256').update(json).digest('hex').slice(0, 16)} ${json}\n`);
  const error = await t.throwsAsync(LogStore.open(path));
  t.true(error instanceof ServerError && error.code === 'storage_damaged', String(error));
});

test('store: a log of many records larger than one read reads back whole', async (t) => {
  const path = join(await tempDir(t), 'store.log');
  const store = await LogStore.open(path);
  const values = Array.from({ length: 12 }, (_, i) => Buffer.alloc(100_000 + i, i));
  for (const [i, value] of values.entries()) await store.put(`k${i}`, value);
  await store.close();
  const reopened = await LogStore.open(path);
  t.teardown(() => reopened.close());
  for (const [i, value] of values.entries()) t.deepEqual(reopened.get(`k${i}`), value);
});

test('store: a compare-and-put writes only over the revision it read, decided in log order, even among writes in one batch', async (t) => {
  const store = await LogStore.open(join(await tempDir(t), 'store.log'));
  t.is(store.revision('k'), 0, 'absent');
  t.true(await store.compareAndPut('k', Buffer.from('1'), 0));
  const read = store.revision('k');
  t.not(read, 0);
  // Two writers that read the same revision, queued behind a write under way so that they share a batch (one
  // fsync): the first wins, the second is refused.
  const [, first, second] = await Promise.all([store.put('other', Buffer.from('x')), store.compareAndPut('k', Buffer.from('a'), read), store.compareAndPut('k', Buffer.from('b'), read)]);
  t.deepEqual([first, second], [true, false]);
  t.is(store.get('k')?.toString(), 'a');
  // A plain put in between is a write too: a condition on what was read before it fails.
  const before = store.revision('k');
  await store.put('k', Buffer.from('c'));
  t.false(await store.compareAndPut('k', Buffer.from('d'), before));
  t.false(await store.compareAndPut('k', Buffer.from('d'), 0), 'only if absent: it is not');
  // Deleted and written again, the key never gets back a revision it had: a condition from before the delete fails.
  const last = store.revision('k');
  await store.delete('k');
  t.is(store.revision('k'), 0);
  await store.put('k', Buffer.from('e'));
  t.false(await store.compareAndPut('k', Buffer.from('f'), last));
  t.is(store.get('k')?.toString(), 'e');
  await store.close();
});

test("store: revisions count per scope: what one mount reads of its own says nothing of another mount's writes", async (t) => {
  const store = await LogStore.open(join(await tempDir(t), 'store.log'), { revisionScope: mountScope });
  await store.put('mounts/a/k', Buffer.from('1'));
  const first = store.revision('mounts/a/k');
  // Another mount writes seven times between two of a's writes: a shared counter moved a's revision by eight.
  for (let i = 0; i < 7; i++) await store.put(`mounts/b/k${i}`, Buffer.from('x'));
  await store.put('mounts/a/k', Buffer.from('2'));
  t.is(store.revision('mounts/a/k'), first + 1);
  // Within a scope a revision still never comes back: deleted and made again, the key gets a new one.
  await store.delete('mounts/a/k');
  await store.put('mounts/a/k', Buffer.from('3'));
  t.is(store.revision('mounts/a/k'), first + 2);
  await store.close();
});

// Each mount's storage quota: an engine (hostile or just busy) cannot fill the server's disk and memory.
import test from 'ava';
import { startTestServer } from './harness.js';

test('quota: a mount past its key quota is refused with quota_exceeded, even by concurrent writes; other mounts are not', async (t) => {
  const s = await startTestServer(t, { limits: { maxStorageKeysPerMount: 3 } });
  await s.api('POST', '/v1/sys/mounts/full', { plugin: 'kv', version: '1.0.0' });
  await s.api('POST', '/v1/sys/mounts/other', { plugin: 'kv', version: '1.0.0' });
  const writes = await Promise.all(Array.from({ length: 10 }, (_, i) => s.api('PUT', `/v1/full/data/s${i}`, { data: { i } })));
  t.is(writes.filter((w) => w.status === 200).length, 3, 'exactly the quota is taken, none past it');
  const refused = writes.filter((w) => w.status !== 200);
  t.true(refused.every((w) => w.status === 507 && w.json.code === 'quota_exceeded'), JSON.stringify(refused[0]?.json));
  t.regex(refused[0]?.json.errors[0], /full\/.*3 keys/);
  // A key it already has can still be written; another mount has a quota of its own.
  const kept = writes.findIndex((w) => w.status === 200);
  t.is((await s.api('PUT', `/v1/full/data/s${kept}`, { data: { again: true } })).json.data?.version, 2);
  t.is((await s.api('PUT', '/v1/other/data/s0', { data: { v: 1 } })).status, 200);
});

test('quota: a mount past its byte quota is refused; unmounting frees it', async (t) => {
  const s = await startTestServer(t, { limits: { maxStorageBytesPerMount: 64 * 1024 } });
  await s.api('POST', '/v1/sys/mounts/full', { plugin: 'kv', version: '1.0.0' });
  const big = { data: { v: 'x'.repeat(40 * 1024) } };
  t.is((await s.api('PUT', '/v1/full/data/a', big)).status, 200);
  t.like(await s.api('PUT', '/v1/full/data/b', big), { status: 507, json: { code: 'quota_exceeded' } });
  t.is((await s.api('DELETE', '/v1/sys/mounts/full')).status, 204);
  await s.api('POST', '/v1/sys/mounts/full', { plugin: 'kv', version: '1.0.0' });
  t.is((await s.api('PUT', '/v1/full/data/b', big)).status, 200);
});

// Any go-plugin engine mounts: a secrets engine written in Go against go-plugin 1.0.1, signed and
// verified like the TypeScript ones, served its storage over the broker.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { ENGINE_PROTO } from '../../examples/secrets-server/protocol.js';
import { goBinaries, goTest } from '../interop/go-binaries.js';
import { DEFAULT_ENGINES, startTestServer } from './harness.js';

goTest('server: a Go engine (go-plugin 1.0.1) mounts, verified, and keeps its state in the server storage', async (t, go) => {
  const s = await startTestServer(t, { engines: [...DEFAULT_ENGINES, { engine: 'goecho', version: '1.0.0', executable: go.secretsengine }] });
  const mounted = await s.api('POST', '/v1/sys/mounts/go', { plugin: 'goecho', version: '1.0.0' });
  t.is(mounted.status, 200, JSON.stringify(mounted.json));
  t.regex(mounted.json.data.sha256, /^[0-9a-f]{64}$/);
  t.is((await s.api('GET', '/v1/go/info')).json.data.engine, 'go');
  t.is((await s.api('PUT', '/v1/go/things/a', { answer: 42 })).status, 200);
  t.deepEqual((await s.api('GET', '/v1/go/things/a')).json, { data: { answer: 42 }, engine: 'go' });
  t.is((await s.api('GET', '/v1/go/things/missing')).status, 404);
});

test('the engine protocol in engine.proto (for other languages) is the text the TypeScript side loads', async (t) => {
  const file = fileURLToPath(new URL('../../../examples/secrets-server/engine.proto', import.meta.url));
  t.is(await readFile(file, 'utf8'), ENGINE_PROTO.slice(1));
  t.truthy(goBinaries === undefined || goBinaries.secretsengine);
});

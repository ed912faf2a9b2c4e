// The local bridge that lets grpc-js reach a multiplexed (yamux) stream: nothing it opens outlives the
// connection it was opened for.
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import test from 'ava';
import { openLocalBridge } from '../../src/transport/local-bridge.js';

test('local bridge: a stream that opens after its local connection has gone is closed at once, not held for the session', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-bridge-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let open: (remote: Duplex) => void = () => {};
  let asked!: () => void;
  const connecting = new Promise<void>((resolve) => (asked = resolve));
  const bridge = await openLocalBridge(dir, () => {
    asked();
    return new Promise((resolve) => (open = resolve));
  });
  t.teardown(() => bridge.close());
  const local = connect(bridge.path);
  await connecting;
  // grpc-js gives up on the connection while the remote stream (a yamux stream, after a knock) is still on its way.
  await new Promise((resolve) => local.destroy().once('close', resolve));
  await new Promise((resolve) => setTimeout(resolve, 50));
  // Like a yamux stream whose peer keeps its side open: ending our side alone does not close it.
  const remote = new Duplex({ read() {}, write: (_chunk, _encoding, done) => done() });
  open(remote);
  await new Promise((resolve) => setImmediate(resolve));
  t.true(remote.destroyed, 'the late stream would count against the peer-stream limit until the session ends');
});

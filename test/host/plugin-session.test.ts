// The host's end of go-plugin's broker stream, against a plugin that floods it and never reads.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import test from 'ava';
import { openBrokerStream } from '../../src/host/plugin-session.js';
import { GrpcBroker } from '../../src/transport/broker.js';
import { loneBroker } from '../helpers/lone-broker.js';
import { BrokerMultiplex, MAX_PENDING_KNOCKS } from '../../src/transport/broker-multiplex.js';
import type { ConnInfo } from '../../src/transport/broker-protocol.js';
import type { CallPath } from '../../src/transport/call-path.js';

test('broker stream: a plugin that knocks without end and never reads the acknowledgements cannot make the host queue them without bound', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-session-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // The plugin's side of the stream: what the host writes is never taken (no window granted), so no write completes.
  const stream = Object.assign(
    new Duplex({ objectMode: true, read() {}, write: () => undefined }),
    { cancel: () => stream.destroy() },
  );
  const calls = { bidiStream: () => stream } as unknown as CallPath;
  const broker: GrpcBroker = loneBroker({
    socketDir: async () => dir,
    maxMessageBytes: 1 << 20,
    checkAddress: async (_network, address) => ({ address, release: async () => {} }),
    multiplexer: new BrokerMultiplex((info) => broker.send(info), { bridgeDir: dir, knockTimeoutMs: 1000 }),
  });
  t.teardown(() => broker.close());
  openBrokerStream(calls, broker);
  // Knocks past the pending limit are each refused at once: one acknowledgement written per knock read.
  const knocks = 10_000;
  for (let id = 1; id <= knocks; id++) {
    const knock: ConnInfo = { serviceId: 1000 + id, network: '', address: '', knock: { knock: true, ack: false, error: '' } };
    stream.push(knock);
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.true(stream.writableLength <= 2 * stream.writableHighWaterMark, `${stream.writableLength} acknowledgements queued for a plugin that reads none`);
  t.true(stream.isPaused(), 'the host stops reading the knocks it cannot answer');
  t.true(stream.readableLength > knocks - MAX_PENDING_KNOCKS - 2 * stream.writableHighWaterMark, 'the rest wait unread (in a real stream: in the HTTP/2 window)');
});

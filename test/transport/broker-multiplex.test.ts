// The multiplexed broker's routing and knocks, between two yamux sessions (no gRPC).
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import test from 'ava';
import { loneBroker } from '../helpers/lone-broker.js';
import { BrokerMultiplex, MAX_PENDING_KNOCKS } from '../../src/transport/broker-multiplex.js';
import type { ConnInfo } from '../../src/transport/broker-protocol.js';
import { YamuxSession } from '../../src/transport/yamux.js';

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-mux-test-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

async function sessions(): Promise<{ host: YamuxSession; plugin: YamuxSession }> {
  const path = join(dir, `pair-${counter++}.sock`);
  const server = createServer();
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const client = connect(path);
  const socket = await accepted;
  server.close();
  return { host: new YamuxSession(client, 'client'), plugin: new YamuxSession(socket, 'server') };
}

test('multiplex: the host refuses a stream the plugin opens without a knock', async (t) => {
  // Attack: a plugin reaching the host's brokered servers (or anything else) without announcing it.
  const { host, plugin } = await sessions();
  const hostSide = new BrokerMultiplex(() => {}, { bridgeDir: dir, knockTimeoutMs: 5000 });
  hostSide.attach(host);
  let injected = false;
  hostSide.accept(1, () => (injected = true));
  const stream = plugin.open();
  const error = await new Promise<Error>((resolve) => stream.once('error', resolve));
  t.is((error as NodeJS.ErrnoException).code, 'ECONNRESET');
  t.false(injected);
  host.close();
});

test('multiplex: a knock routes the next stream to its id; one nobody serves is answered with an error', async (t) => {
  const { host, plugin } = await sessions();
  const sent: ConnInfo[] = [];
  const main: Duplex[] = [];
  const pluginSide = new BrokerMultiplex((info) => sent.push(info), {
    bridgeDir: dir,
    knockTimeoutMs: 5000,
    unannounced: (stream) => main.push(stream),
  });
  pluginSide.attach(plugin);
  const brokered: Duplex[] = [];
  pluginSide.accept(7, (stream) => brokered.push(stream));

  pluginSide.receive({ serviceId: 7, network: '', address: '', knock: { knock: true, ack: false, error: '' } });
  t.deepEqual(sent.at(-1), { serviceId: 7, network: '', address: '', knock: { knock: true, ack: true, error: '' } });
  host.open();
  host.open();
  const end = Date.now() + 10_000;
  while (brokered.length + main.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  t.is(brokered.length, 1, 'the knocked stream went to id 7');
  t.is(main.length, 1, 'the next one, unannounced, went to the main server');

  const started = Date.now();
  pluginSide.receive({ serviceId: 8, network: '', address: '', knock: { knock: true, ack: false, error: '' } });
  while (sent.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  t.deepEqual(sent.at(-1)?.knock, { knock: true, ack: true, error: 'no brokered service with id 8' });
  t.true(Date.now() - started >= 1000, 'a knock may arrive just before its service: it waited');
  host.close();
});

test('multiplex: knocks beyond MAX_PENDING_KNOCKS are refused at once, without an entry or a timer each', async (t) => {
  // Attack: a peer knocking for ever more ids (served or not), each kept with a timer until it expires.
  const { host, plugin } = await sessions();
  const sent: ConnInfo[] = [];
  const pluginSide = new BrokerMultiplex((info) => sent.push(info), { bridgeDir: dir, knockTimeoutMs: 5000, unannounced: () => {} });
  pluginSide.attach(plugin);
  pluginSide.accept(1, () => {});
  const knock = (serviceId: number): void =>
    pluginSide.receive({ serviceId, network: '', address: '', knock: { knock: true, ack: false, error: '' } });
  // Half acknowledged ids whose stream never comes, half ids nobody serves (yet).
  for (let i = 0; i < MAX_PENDING_KNOCKS / 2; i++) knock(1);
  for (let i = 0; i < MAX_PENDING_KNOCKS / 2; i++) knock(1000 + i);
  t.is(sent.length, MAX_PENDING_KNOCKS / 2, 'served knocks are acknowledged, early ones wait');
  knock(1);
  knock(5000);
  t.is(sent.length, MAX_PENDING_KNOCKS / 2 + 2, 'both extra knocks are answered at once');
  for (const info of sent.slice(-2)) t.regex(info.knock?.error ?? '', /knocks are waiting/);
  pluginSide.close();
  host.close();
});

test('multiplex: a dial that has failed knocks no more: a plugin slow to acknowledge is not sent the knocks of connections already gone', async (t) => {
  // Attack: a plugin that does not acknowledge knocks while the host dials again and again; every connection
  // attempt queued a knock, sent one per knock timeout long after its dial had failed, and held up later dials.
  const { host, plugin } = await sessions();
  const knocks: ConnInfo[] = [];
  const hostSide = new BrokerMultiplex((info) => knocks.push(info), { bridgeDir: dir, knockTimeoutMs: 60_000 });
  hostSide.attach(host);
  const broker = loneBroker({
    socketDir: async () => dir,
    checkAddress: () => Promise.reject(new Error('not used in multiplexed mode')),
    multiplexer: hostSide,
  });
  const dials = await Promise.all(Array.from({ length: 20 }, () => broker.dial(7, { timeoutMs: 200 }).then(() => 'connected', (error: Error) => error.message)));
  t.true(dials.every((outcome) => /broker id 7/.test(outcome)), dials[0]);
  t.is(knocks.length, 1, 'one knock at a time');
  // The plugin acknowledges at last: the knock queued behind it belong to dials that failed, and none goes out.
  hostSide.receive({ serviceId: 7, network: '', address: '', knock: { knock: true, ack: true, error: '' } });
  for (let round = 0; round < 5; round++) await new Promise((resolve) => setImmediate(resolve));
  t.is(knocks.length, 1, `${knocks.length - 1} knocks went out for dials that had failed`);
  await broker.close();
  host.close();
  plugin.close();
});

test('multiplex: knocks the peer never acknowledges leave nothing behind, whatever ids they were for', async (t) => {
  // Attack: a plugin handing the host ever new ids to dial and acknowledging no knock; each kept an entry for its id for good.
  const { host, plugin } = await sessions();
  const hostSide = new BrokerMultiplex(() => {}, { bridgeDir: dir, knockTimeoutMs: 10 });
  hostSide.attach(host);
  const broker = loneBroker({
    socketDir: async () => dir,
    checkAddress: () => Promise.reject(new Error('not used in multiplexed mode')),
    multiplexer: hostSide,
  });
  for (let id = 1; id <= 10; id++) {
    const error = await t.throwsAsync(broker.dial(id, { timeoutMs: 30_000 }));
    t.regex(String(error), /no acknowledgement of the knock/);
  }
  t.is(hostSide.waitingIds, 0);
  await broker.close();
  host.close();
  plugin.close();
});

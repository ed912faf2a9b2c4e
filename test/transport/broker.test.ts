// The broker's own bookkeeping, with no peer behind it: what a peer's announcements can make it hold.
import test from 'ava';
import { isGatehouseError } from '../../src/index.js';
import { loneBroker } from '../helpers/lone-broker.js';
import { brokerService, connInfoCodec } from '../../src/transport/broker-protocol.js';

test('broker: announcements nobody dials are kept up to 64, the newest; older ones are forgotten', async (t) => {
  // Attack: a peer flooding the broker stream with ConnInfo for ids nobody will dial, to grow our memory.
  const broker = loneBroker({
    // Reached only for an announcement the broker kept: it stops the dial before any connection.
    checkAddress: () => Promise.reject(new Error('kept')),
    dialTimeoutMs: 100,
  });
  for (let id = 1; id <= 1000; id++) broker.receive({ serviceId: id, network: 'unix', address: `/tmp/announced-${id}.sock` });

  const kept = async (id: number): Promise<boolean> => {
    const error = await t.throwsAsync(broker.dial(id));
    t.true(isGatehouseError(error, 'BROKER_FAILED'), String(error));
    return /kept/.test(error?.message ?? '');
  };
  t.true(await kept(1000));
  t.true(await kept(937), 'the 64th newest is kept');
  t.false(await kept(936), 'the 65th newest is forgotten: its dial waits and times out');
  t.false(await kept(1));
  await broker.close();
});

test('broker: a ConnInfo larger than any announcement needs fails to decode, on the host and on the plugin, so announcements cannot pin memory', (t) => {
  const { StartStream } = brokerService;
  const huge = connInfoCodec.encode({ serviceId: 1, network: 'unix', address: `/tmp/${'a'.repeat(1 << 20)}` });
  t.throws(() => StartStream.responseDeserialize(huge), { message: /a broker message of \d+ bytes, over the 8192 any ConnInfo needs/ });
  t.throws(() => StartStream.requestDeserialize(huge), { message: /over the 8192/ });
  const usual = { serviceId: 7, network: 'unix', address: '/tmp/plugin-1234/broker-7.sock' };
  t.deepEqual(StartStream.responseDeserialize(connInfoCodec.encode(usual)), usual);
});

test('broker: dials the peer never answers leave nothing behind, whatever ids it had the host dial', async (t) => {
  // Attack: a plugin handing the host ever new ids to dial (a callback it "serves") and announcing none;
  // each failed dial kept an entry for its id for good (200,000 ids: 13 MiB of the host's heap).
  const broker = loneBroker();
  const outcomes = await Promise.all(Array.from({ length: 1000 }, (_, i) => broker.dial(i + 1, { timeoutMs: 1 }).then(() => 'dialed', (error: unknown) => isGatehouseError(error, 'BROKER_FAILED'))));
  t.true(outcomes.every((outcome) => outcome === true));
  t.is(broker.waitingIds, 0);
  // An announcement that answers a waiting dial leaves nothing either.
  const answered = broker.dial(5000, { timeoutMs: 60_000 }).catch((error: Error) => error);
  t.is(broker.waitingIds, 1);
  broker.receive({ serviceId: 5000, network: 'unix', address: '/tmp/answered.sock' });
  t.is(broker.waitingIds, 0);
  t.regex(String(await answered), /no announcement is expected/);
  await broker.close();
});

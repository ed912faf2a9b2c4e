// serve()'s bidirectional streams that answer each request (reflection, and the broker stream's knock
// refusals): while the host does not read the answers, the plugin stops reading its requests.
import { Duplex } from 'node:stream';
import test from 'ava';
import { brokerImplementation } from '../../src/plugin/plugin-broker.js';
import { reflectionServices } from '../../src/plugin/reflection.js';
import type { BrokerLink, GrpcBroker } from '../../src/transport/broker.js';
import type { ConnInfo } from '../../src/transport/broker-protocol.js';
import type { ReflectionRequest } from '../../src/transport/reflection-protocol.js';
import { loadKVService } from '../../examples/kv/kv.js';

/** A host's call that sends requests and takes answers only when the test says (write callbacks are held). */
function hostNotReading(): { call: Duplex; requests: (messages: unknown[]) => Promise<void>; answered: () => number; read: () => void } {
  const held: Array<() => void> = [];
  let answered = 0;
  let reading = false;
  const call = new Duplex({
    objectMode: true,
    writableHighWaterMark: 4,
    read() {},
    write(_answer, _encoding, done) {
      answered += 1;
      if (reading) done();
      else held.push(done);
    },
  });
  return {
    call,
    requests: async (messages) => {
      for (const message of messages) call.push(message);
      await new Promise((resolve) => setImmediate(resolve));
    },
    answered: () => answered,
    read: () => {
      reading = true;
      held.splice(0).forEach((done) => done());
    },
  };
}

/** Sends `requests` on a host call that does not read the answers, then reads them; checks both halves. */
async function pacedReplies(t: import('ava').ExecutionContext, serveCall: (call: Duplex) => void, requests: unknown[]): Promise<void> {
  const host = hostNotReading();
  serveCall(host.call);
  await host.requests(requests);
  t.true(host.call.isPaused(), 'the plugin stopped reading requests');
  t.true(host.call.readableLength > 0, `requests left unread (${host.answered()} of ${requests.length} answered)`);
  host.read();
  await new Promise((resolve) => setImmediate(resolve));
  t.is(host.answered(), requests.length, 'every request is answered once the host reads');
  t.false(host.call.isPaused());
}

const many = <T>(message: T): T[] => Array.from({ length: 100 }, () => message);

test('reflection: a host that does not read the answers cannot make the plugin read queries without limit', async (t) => {
  // Attack surface: queries each bring an answer; unread answers would queue in the plugin without bound.
  const [reflection] = reflectionServices([{ definition: loadKVService(), implementation: {} }]);
  const implementation = reflection?.implementation as unknown as { ServerReflectionInfo(call: Duplex): void };
  const query: ReflectionRequest = { host: '', query: { kind: 'file_containing_symbol', value: 'kv.KV' } };
  await pacedReplies(t, (call) => implementation.ServerReflectionInfo(call), many(query));
});

test('broker stream: a host that does not read the replies cannot make the plugin read knocks without limit', async (t) => {
  // Attack surface: knocks refused at once each bring a reply; unread replies would queue without bound.
  let link: BrokerLink | undefined;
  const refusing = {
    attach: (attached: BrokerLink) => (link = attached),
    detach: () => {},
    receive: (info: ConnInfo) => link?.send({ ...info, knock: { knock: true, ack: true, error: 'refused' } }),
  } as unknown as GrpcBroker;
  const implementation = brokerImplementation(refusing) as unknown as { StartStream(call: Duplex): void };
  const knock: ConnInfo = { serviceId: 7, network: '', address: '', knock: { knock: true, ack: false, error: '' } };
  await pacedReplies(t, (call) => implementation.StartStream(call), many(knock));
});

import * as grpc from '@grpc/grpc-js';
import type { BrokerLink, GrpcBroker } from '../transport/broker.js';
import type { ConnInfo } from '../transport/broker-protocol.js';
import { writePaced } from '../transport/paced-writes.js';

/**
 * The plugin's end of go-plugin's broker stream: the host opens it, and the plugin's broker sends and
 * receives announcements through it. One stream at a time; a host that reattaches opens a new one.
 */
export function brokerImplementation(broker: GrpcBroker): grpc.UntypedServiceImplementation {
  let active: BrokerLink | undefined;
  const startStream: grpc.handleBidiStreamingCall<ConnInfo, ConnInfo> = (call) => {
    if (active !== undefined) {
      // Two streams would split the announcements between them, and a dial would wait on the wrong one.
      call.emit('error', { code: grpc.status.ALREADY_EXISTS, details: 'a broker stream is already open' });
      return;
    }
    const link: BrokerLink = { send: (info) => writePaced(call, info), close: () => call.end() };
    const ended = (): void => {
      if (active !== link) return;
      active = undefined;
      broker.detach(link);
    };
    active = link;
    broker.attach(link);
    call.on('data', (info: ConnInfo) => broker.receive(info));
    call.on('end', () => {
      ended();
      call.end();
    });
    call.on('cancelled', ended);
    call.on('error', ended);
  };
  return { StartStream: startStream };
}

// A broker with no plugin process behind it, for tests that drive its bookkeeping or serve through it directly.
import { GrpcBroker, type BrokerSettings } from '../../src/transport/broker.js';

/** Plaintext, small messages, a liveness that never reports an exit; `settings` replace any of those. */
export function loneBroker(settings: Partial<BrokerSettings> = {}): GrpcBroker {
  return new GrpcBroker({
    peerIsPlugin: true,
    tls: undefined,
    socketDir: async () => '/nonexistent',
    maxMessageBytes: 1024,
    channelOptions: {},
    serverOptions: {},
    checkAddress: () => Promise.reject(new Error('no announcement is expected')),
    liveness: { exit: () => undefined, settleExit: async () => undefined },
    dialTimeoutMs: 1000,
    ...settings,
  });
}

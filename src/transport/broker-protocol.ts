/**
 * go-plugin's broker service, `plugin.GRPCBroker/StartStream` (proto/grpc_broker.proto): one
 * bidirectional stream of ConnInfo messages, opened by the host, over which either side announces the
 * address of a service it serves under an id (go-plugin <= 1.5), or knocks before it opens a
 * multiplexed connection to one (go-plugin >= 1.6).
 */
import type * as grpc from '@grpc/grpc-js';
import { MAX_HANDSHAKE_LINE_BYTES } from './handshake.js';
import { messageCodec, readBuffer, streamingMethod, type MessageCodec } from './protobuf.js';

export interface Knock {
  knock: boolean;
  ack: boolean;
  error: string;
}

export interface ConnInfo {
  serviceId: number;
  network: string;
  address: string;
  /** Present only on knocks and their acknowledgements (multiplexed mode). */
  knock?: Knock;
}

const knockCodec = messageCodec<Knock>(
  (message, writer) => {
    if (message.knock) writer.uint32((1 << 3) | 0).bool(true);
    if (message.ack) writer.uint32((2 << 3) | 0).bool(true);
    if (message.error !== '') writer.uint32((3 << 3) | 2).string(message.error);
  },
  () => ({ knock: false, ack: false, error: '' }),
  (message, field, reader, wireType) => {
    if (field === 1 && wireType === 0) message.knock = reader.bool();
    else if (field === 2 && wireType === 0) message.ack = reader.bool();
    else if (field === 3 && wireType === 2) message.error = reader.string();
    else return false;
    return true;
  },
);

export const connInfoCodec: MessageCodec<ConnInfo> = messageCodec<ConnInfo>(
  (message, writer) => {
    if (message.serviceId !== 0) writer.uint32((1 << 3) | 0).uint32(message.serviceId);
    if (message.network !== '') writer.uint32((2 << 3) | 2).string(message.network);
    if (message.address !== '') writer.uint32((3 << 3) | 2).string(message.address);
    // A present but empty Knock still means "this is a knock message" to go-plugin, so it is written
    // whenever it is set.
    if (message.knock !== undefined) writer.uint32((4 << 3) | 2).bytes(knockCodec.encode(message.knock));
  },
  () => ({ serviceId: 0, network: '', address: '' }),
  (message, field, reader, wireType) => {
    if (field === 1 && wireType === 0) message.serviceId = reader.uint32();
    else if (field === 2 && wireType === 2) message.network = reader.string();
    else if (field === 3 && wireType === 2) message.address = reader.string();
    else if (field === 4 && wireType === 2) message.knock = knockCodec.decode(readBuffer(reader));
    else return false;
    return true;
  },
);

/** A ConnInfo carries what a handshake line does (an id, a network, an address) or a knock's short error. */
export const MAX_CONN_INFO_BYTES = MAX_HANDSHAKE_LINE_BYTES;

/**
 * ConnInfo as read from the peer: one over MAX_CONN_INFO_BYTES fails the broker stream. Attack: a peer
 * announcing 16 MiB addresses, kept until dialed (64 of them), would pin ~1 GiB of our memory.
 */
const peerConnInfoCodec: MessageCodec<ConnInfo> = {
  encode: connInfoCodec.encode,
  decode(bytes) {
    if (bytes.length > MAX_CONN_INFO_BYTES) {
      throw new Error(`a broker message of ${bytes.length} bytes, over the ${MAX_CONN_INFO_BYTES} any ConnInfo needs`);
    }
    return connInfoCodec.decode(bytes);
  },
};

export const brokerService = {
  StartStream: streamingMethod('/plugin.GRPCBroker/StartStream', peerConnInfoCodec, peerConnInfoCodec, {
    requestStream: true,
    responseStream: true,
  }),
} satisfies grpc.ServiceDefinition;

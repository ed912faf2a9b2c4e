import protobuf from 'protobufjs/minimal.js';
import type * as grpc from '@grpc/grpc-js';

/**
 * Codecs for go-plugin's internal messages, written against proto/*.proto with protobufjs's wire
 * runtime so a plugin does not parse .proto files at start (measured: proto-loader adds ~29 ms,
 * this ~7 ms). test/transport/internal-protos.test.ts checks each codec against the .proto file.
 */
export const { Reader, Writer } = protobuf;
export type Reader = protobuf.Reader;
export type Writer = protobuf.Writer;

export interface MessageCodec<T> {
  encode(message: T): Buffer;
  decode(bytes: Buffer): T;
}

/** A bytes field as a Buffer over the message's own memory, without a copy. */
export function readBuffer(reader: Reader): Buffer {
  const bytes = reader.bytes();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Builds a codec from an encoder that writes fields and a decoder that reads one field at a time. */
export function messageCodec<T>(
  write: (message: T, writer: Writer) => void,
  initial: () => T,
  readField: (message: T, fieldNumber: number, reader: Reader, wireType: number) => boolean,
): MessageCodec<T> {
  return {
    encode(message) {
      const writer = Writer.create();
      write(message, writer);
      return Buffer.from(writer.finish());
    },
    decode(bytes) {
      const reader = Reader.create(bytes);
      const message = initial();
      while (reader.pos < reader.len) {
        const tag = reader.uint32();
        const fieldNumber = tag >>> 3;
        const wireType = tag & 7;
        if (!readField(message, fieldNumber, reader, wireType)) reader.skipType(wireType);
      }
      return message;
    },
  };
}

/** A unary method definition for grpc-js from a pair of codecs. */
export function unaryMethod<Req, Res>(
  path: string,
  request: MessageCodec<Req>,
  response: MessageCodec<Res>,
): grpc.MethodDefinition<Req, Res> {
  return streamingMethod(path, request, response, { requestStream: false, responseStream: false });
}

/** A method definition for grpc-js with streaming on either side. */
export function streamingMethod<Req, Res>(
  path: string,
  request: MessageCodec<Req>,
  response: MessageCodec<Res>,
  streams: { requestStream: boolean; responseStream: boolean },
): grpc.MethodDefinition<Req, Res> {
  return {
    path,
    ...streams,
    requestSerialize: (value: Req) => request.encode(value),
    requestDeserialize: (bytes: Buffer) => request.decode(bytes),
    responseSerialize: (value: Res) => response.encode(value),
    responseDeserialize: (bytes: Buffer) => response.decode(bytes),
  };
}

export type Empty = Record<string, never>;
export const emptyCodec: MessageCodec<Empty> = messageCodec<Empty>(
  () => {},
  () => ({}),
  () => false,
);

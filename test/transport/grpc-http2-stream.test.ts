import * as net from 'node:net';
import { join } from 'node:path';
import { once } from 'node:events';
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import { GrpcHttp2Client, GrpcStatus, GrpcStatusError, type GrpcHttp2ClientOptions } from '../../src/transport/grpc-http2-client.js';
import type { StreamingCall } from '../../src/transport/grpc-http2-stream.js';
import { waitUntil } from '../helpers/process.js';
import { tempDir } from '../discover/temp-dir.js';

// The lean client's streaming calls (the broker's bidi stream, the stdio and server streams) against
// grpc-js's server: messages both ways, statuses, cancellation, deadlines and flow control.

const raw = (value: Buffer) => value;
const method = (path: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> => ({
  path, requestStream, responseStream,
  requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw,
});
const service = {
  Count: method('/test.S/Count', false, true),
  Flood: method('/test.S/Flood', false, true),
  Echo: method('/test.S/Echo', true, true),
  Fail: method('/test.S/Fail', false, true),
  Chunks: method('/test.S/Chunks', false, true),
};

interface Server {
  socket: string;
  /** Messages the Flood handler managed to hand to grpc-js before it pushed back. */
  flooded: () => number;
  cancelled: () => number;
}

async function grpcServer(t: ExecutionContext): Promise<Server> {
  const socket = join(await tempDir(t), 's');
  const server = new grpc.Server();
  let flooded = 0;
  let cancelled = 0;
  server.addService(service, {
    Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = call.request.readUInt32BE(0);
      for (let i = 0; i < n; i++) call.write(Buffer.from(String(i)));
      call.end();
    },
    // Writes 64 KiB messages for as long as grpc-js accepts them without pushing back.
    Flood: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      call.on('cancelled', () => cancelled++);
      const more = (): void => {
        while (!call.cancelled) {
          flooded++;
          if (!call.write(Buffer.alloc(64 * 1024, 1))) return void call.once('drain', more);
        }
      };
      more();
    },
    Echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('cancelled', () => cancelled++);
      call.on('data', (message: Buffer) => call.write(message));
      call.on('end', () => call.end());
    },
    // `count` messages of 8 KiB, each numbered in its first bytes: many DATA frames, then the status.
    Chunks: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const count = call.request.readUInt32BE(0);
      for (let i = 0; i < count; i++) {
        const message = Buffer.alloc(8 * 1024, 7);
        message.writeUInt32BE(i, 0);
        call.write(message);
      }
      call.end();
    },
    // 50 messages of 8 KiB, then a status other than OK.
    Fail: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      for (let i = 0; i < 50; i++) call.write(Buffer.alloc(8 * 1024, 48 + (i % 10)));
      call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: 'not now' });
    },
  });
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  t.teardown(() => server.forceShutdown());
  return { socket, flooded: () => flooded, cancelled: () => cancelled };
}

function client(t: ExecutionContext, socket: string, ready?: GrpcHttp2ClientOptions['ready']): GrpcHttp2Client {
  const c = new GrpcHttp2Client({
    connect: () => net.connect(socket),
    ...(ready ? { ready } : {}),
    authority: 'localhost',
    maxReceiveMessageBytes: 1 << 20,
    maxSendMessageBytes: 1 << 20,
    windowBytes: 256 * 1024,
  });
  t.teardown(() => c.destroy());
  return c;
}

const codec = { serialize: raw, deserialize: raw };

async function collect(call: StreamingCall<Buffer, Buffer>): Promise<string[]> {
  const received: string[] = [];
  for await (const message of call as AsyncIterable<Buffer>) received.push(message.toString());
  return received;
}

/** Reads the stream to its error; a slow reader (`eachMs`) leaves messages unread when the status arrives. */
async function failure(t: ExecutionContext, call: StreamingCall<Buffer, Buffer>, received: string[] = [], eachMs = 0): Promise<GrpcStatusError> {
  const error = await t.throwsAsync(async () => {
    for await (const message of call as AsyncIterable<Buffer>) {
      received.push(message.toString());
      if (eachMs > 0) await new Promise((resolve) => setTimeout(resolve, eachMs));
    }
  });
  t.true(error instanceof GrpcStatusError, String(error));
  return error as GrpcStatusError;
}

const count = (n: number): Buffer => {
  const request = Buffer.alloc(4);
  request.writeUInt32BE(n);
  return request;
};

test('stream: a server stream delivers every message in order, then ends', async (t) => {
  const { socket } = await grpcServer(t);
  const c = client(t, socket);
  const call = c.stream('/test.S/Count', codec);
  call.end(count(500));
  t.deepEqual(await collect(call), Array.from({ length: 500 }, (_, i) => String(i)));
});

test('stream: a bidi stream echoes what is written, and ends when the requests end', async (t) => {
  const { socket } = await grpcServer(t);
  const call = client(t, socket).stream('/test.S/Echo', codec);
  const received = collect(call);
  for (const word of ['a', 'b', 'c']) call.write(Buffer.from(word));
  call.end();
  t.deepEqual(await received, ['a', 'b', 'c']);
});

test('stream: opened while its connection is still being proved, it waits: what was written goes out in order, and a cancel meanwhile ends only that call', async (t) => {
  const { socket } = await grpcServer(t);
  let prove: () => void = () => {};
  const proved = new Promise<void>((resolve) => (prove = resolve));
  const c = client(t, socket, () => proved);
  const call = c.stream('/test.S/Echo', codec);
  const received = collect(call);
  for (const word of ['a', 'b', 'c']) call.write(Buffer.from(word));
  call.end();
  const cancelled = c.stream('/test.S/Echo', codec);
  const cancelledError = once(cancelled, 'error');
  cancelled.cancel();
  t.is(((await cancelledError) as [GrpcStatusError])[0].code, GrpcStatus.CANCELLED);
  prove();
  t.deepEqual(await received, ['a', 'b', 'c']);
});

test('stream: a status other than OK after some messages fails the stream with its code and message, after those messages', async (t) => {
  const { socket } = await grpcServer(t);
  const call = client(t, socket).stream('/test.S/Fail', codec);
  call.end(Buffer.alloc(0));
  // A slow reader: the failure is in long before it has read the messages sent before it, which it still gets.
  const received: string[] = [];
  const error = await failure(t, call, received, 5);
  t.is(received.length, 50);
  t.deepEqual(received.map((message) => message[0]), Array.from({ length: 50 }, (_, i) => String(i % 10)));
  t.is(error.code, grpc.status.FAILED_PRECONDITION);
  t.is(error.details, 'not now');
});

test('stream: a reader that falls behind still gets every message and a clean end (the status waits for the data before it)', async (t) => {
  const { socket } = await grpcServer(t);
  const call = client(t, socket).stream('/test.S/Chunks', codec);
  call.end(count(200));
  // A slow reader: the server is done, and its trailers in, while most of the data is unread.
  let next = 0;
  for await (const message of call as AsyncIterable<Buffer>) {
    t.is(message.readUInt32BE(0), next++);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  t.is(next, 200);
});

test('stream: an unknown method is UNIMPLEMENTED (a plugin without go-plugin\'s broker or stdio service)', async (t) => {
  const { socket } = await grpcServer(t);
  const call = client(t, socket).stream('/plugin.GRPCBroker/StartStream', codec);
  t.is((await failure(t, call)).code, GrpcStatus.UNIMPLEMENTED);
});

test('stream: cancel() fails the stream with CANCELLED and the server sees the cancellation', async (t) => {
  const server = await grpcServer(t);
  const call = client(t, server.socket).stream('/test.S/Echo', codec);
  call.write(Buffer.from('x'));
  await once(call, 'data');
  call.cancel();
  const [error] = (await once(call, 'error')) as [GrpcStatusError];
  t.is(error.code, GrpcStatus.CANCELLED);
  await waitUntil(() => server.cancelled() === 1, 5000);
  t.is(server.cancelled(), 1);
});

test('stream: a deadline ends the stream with DEADLINE_EXCEEDED', async (t) => {
  const server = await grpcServer(t);
  const call = client(t, server.socket).stream('/test.S/Echo', { ...codec, deadline: Date.now() + 200 });
  t.is((await failure(t, call)).code, GrpcStatus.DEADLINE_EXCEEDED);
});

test('stream: breaking out of the iteration cancels the call on the server', async (t) => {
  const server = await grpcServer(t);
  const call = client(t, server.socket).stream('/test.S/Echo', codec);
  call.write(Buffer.from('x'));
  for await (const message of call as AsyncIterable<Buffer>) {
    t.is(message.toString(), 'x');
    break;
  }
  await waitUntil(() => server.cancelled() === 1, 5000);
  t.is(server.cancelled(), 1);
});

test('stream: a reader that stops reading holds a flooding server to the flow-control windows', async (t) => {
  const server = await grpcServer(t);
  const call = client(t, server.socket).stream('/test.S/Flood', codec);
  call.end(Buffer.alloc(0));
  call.pause();
  await once(call, 'readable');
  // The server writes until its own buffers and our windows are full; then it must stop for good.
  let settled = -1;
  for (let i = 0; i < 40 && server.flooded() !== settled; i++) {
    settled = server.flooded();
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  // 64 KiB messages: our 256 KiB windows plus grpc-js's and the socket's buffers hold a few dozen at
  // most; an unbounded reader would have taken them all (the server writes for ever).
  t.true(server.flooded() < 200, `the server wrote ${server.flooded()} messages to a reader that does not read`);
  call.resume();
  await waitUntil(() => server.flooded() > settled + 10, 10_000);
  t.true(server.flooded() > settled + 10, 'reading again lets the server go on');
  call.cancel();
  t.is(((await once(call, 'error')) as [GrpcStatusError])[0].code, GrpcStatus.CANCELLED);
});

import { once } from 'node:events';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import { frameMessage } from '../../src/transport/grpc-frames.js';
import { GrpcStatus, GrpcStatusError, MessageSizeError, percentDecode, timeoutHeader, GrpcHttp2Client, type GrpcHttp2ClientOptions } from '../../src/transport/grpc-http2-client.js';
import { tempDir } from '../discover/temp-dir.js';

// Conformance of the lean unary client against grpc-js's server (and a raw HTTP/2 server for what no
// well-behaved server sends). The Go side (grpc-go) is covered by every interop test once the host
// uses this client.

const raw = (value: Buffer) => value;
const method = (path: string): grpc.MethodDefinition<Buffer, Buffer> => ({
  path, requestStream: false, responseStream: false,
  requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw,
});
const service = {
  Echo: method('/test.T/Echo'),
  Fail: method('/test.T/Fail'),
  Hang: method('/test.T/Hang'),
  Big: method('/test.T/Big'),
  Meta: method('/test.T/Meta'),
};

async function grpcServer(t: ExecutionContext): Promise<{ socket: string; hung: () => number }> {
  const socket = join(await tempDir(t), 's');
  const server = new grpc.Server();
  let hung = 0;
  server.addService(service, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => done(null, call.request),
    Fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) =>
      done({ code: grpc.status.FAILED_PRECONDITION, details: 'naïve 100% wrong\nsecond line' }),
    Hang: (call: grpc.ServerUnaryCall<Buffer, Buffer>) => {
      hung++;
      call.on('cancelled', () => hung--);
    },
    Big: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => done(null, Buffer.alloc(call.request.readUInt32BE(0), 7)),
    Meta: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
      const initial = new grpc.Metadata();
      initial.set('echo-text', String(call.metadata.get('x-text')[0] ?? ''));
      call.sendMetadata(initial);
      const trailer = new grpc.Metadata();
      trailer.set('echo-bin', call.metadata.get('x-bin')[0] as Buffer);
      done(null, Buffer.from('ok'), trailer);
    },
  });
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  t.teardown(() => server.forceShutdown());
  return { socket, hung: () => hung };
}

function client(t: ExecutionContext, socket: string, extra: Partial<GrpcHttp2ClientOptions> = {}): GrpcHttp2Client {
  const c = new GrpcHttp2Client({
    connect: () => net.connect(socket),
    authority: 'localhost',
    maxReceiveMessageBytes: 1 << 20,
    maxSendMessageBytes: 1 << 20,
    windowBytes: 1 << 20,
    ...extra,
  });
  t.teardown(() => c.destroy());
  return c;
}

async function failure(t: ExecutionContext, call: Promise<unknown>): Promise<GrpcStatusError> {
  const error = await t.throwsAsync(call);
  t.true(error instanceof GrpcStatusError, String(error));
  return error as GrpcStatusError;
}

test('unary client: a call and its response, empty and large messages, many at once on one session', async (t) => {
  const { socket } = await grpcServer(t);
  const c = client(t, socket);
  t.deepEqual((await c.call('/test.T/Echo', Buffer.from('hi'))).message, Buffer.from('hi'));
  t.deepEqual((await c.call('/test.T/Echo', Buffer.alloc(0))).message, Buffer.alloc(0));
  const big = Buffer.alloc(900_000, 3);
  t.deepEqual((await c.call('/test.T/Echo', big)).message, big);
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => c.call('/test.T/Echo', Buffer.from([i]))));
  t.deepEqual(answers.map((a) => a.message[0]), Array.from({ length: 50 }, (_, i) => i));
});

test('unary client: a status other than OK arrives with its code and percent-decoded message', async (t) => {
  const { socket } = await grpcServer(t);
  const error = await failure(t, client(t, socket).call('/test.T/Fail', Buffer.alloc(0)));
  t.is(error.code, grpc.status.FAILED_PRECONDITION);
  t.is(error.details, 'naïve 100% wrong\nsecond line');
  const unknown = await failure(t, client(t, socket).call('/test.T/Nope', Buffer.alloc(0)));
  t.is(unknown.code, grpc.status.UNIMPLEMENTED, 'a trailers-only response (no such method)');
});

test('unary client: metadata goes out (text and -bin) and comes back from headers and trailers', async (t) => {
  const { socket } = await grpcServer(t);
  const response = await client(t, socket).call('/test.T/Meta', Buffer.alloc(0), {
    metadata: [['x-text', 'plain value'], ['x-bin', Buffer.from([0, 255, 1])]],
  });
  t.deepEqual(response.metadata.get('echo-text'), ['plain value']);
  t.deepEqual(response.metadata.get('echo-bin'), [Buffer.from([0, 255, 1])]);
  const error = await failure(t, client(t, socket).call('/test.T/Meta', Buffer.alloc(0), { metadata: [['grpc-status', '0']] }));
  t.regex(error.details, /not allowed/, 'the protocol\'s own headers cannot be forged as metadata');
});

test('unary client: a deadline cancels the stream on both sides and the session stays usable', async (t) => {
  const { socket, hung } = await grpcServer(t);
  const c = client(t, socket);
  const error = await failure(t, c.call('/test.T/Hang', Buffer.alloc(0), { deadline: Date.now() + 200 }));
  t.is(error.code, grpc.status.DEADLINE_EXCEEDED);
  for (let i = 0; i < 100 && hung() > 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.is(hung(), 0, 'the server saw the cancellation');
  t.deepEqual((await c.call('/test.T/Echo', Buffer.from('after'))).message, Buffer.from('after'));
});

test('unary client: an AbortSignal cancels the call', async (t) => {
  const { socket } = await grpcServer(t);
  const controller = new AbortController();
  const call = client(t, socket).call('/test.T/Hang', Buffer.alloc(0), { signal: controller.signal });
  setTimeout(() => controller.abort(), 50);
  t.is((await failure(t, call)).code, grpc.status.CANCELLED);
  t.is((await failure(t, client(t, socket).call('/test.T/Echo', Buffer.alloc(0), { signal: AbortSignal.abort() }))).code, grpc.status.CANCELLED);
});

test('unary client: messages over the receive or send limit are RESOURCE_EXHAUSTED', async (t) => {
  const { socket } = await grpcServer(t);
  const c = client(t, socket, { maxReceiveMessageBytes: 1000, maxSendMessageBytes: 10 });
  const size = Buffer.alloc(4);
  size.writeUInt32BE(5000);
  const received = await failure(t, c.call('/test.T/Big', size));
  t.is(received.code, grpc.status.RESOURCE_EXHAUSTED);
  // Refused here, not by the peer: typed, with the sizes, so a caller can say which setting to raise.
  t.like(received, { direction: 'received', length: 5000, limit: 1000 });
  t.true(received instanceof MessageSizeError);
  size.writeUInt32BE(1000);
  t.is((await c.call('/test.T/Big', size)).message.length, 1000, 'exactly the limit passes, on the same session');
  const sent = await failure(t, c.call('/test.T/Echo', Buffer.alloc(11)));
  t.is(sent.code, grpc.status.RESOURCE_EXHAUSTED);
  t.regex(sent.details, /larger than max/);
  t.like(sent, { direction: 'sent', length: 11, limit: 10 });
});

/** A raw HTTP/2 server answering every stream with `respond`; for what grpc-js would never send. */
async function rawServer(t: ExecutionContext, respond: (stream: http2.ServerHttp2Stream, session: http2.Http2Session) => void): Promise<string> {
  const socket = join(await tempDir(t), 'raw');
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => sessions.add(session));
  // A reset stream errors on the server too; that is the point of the case, not a failure.
  server.on('stream', (stream) => stream.on('error', () => {}).on('data', () => {}).once('end', () => respond(stream, stream.session!)));
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.teardown(() => {
    for (const session of sessions) session.destroy();
    server.close();
  });
  return socket;
}

const grpcHeaders = { ':status': 200, 'content-type': 'application/grpc' };

function answer(stream: http2.ServerHttp2Stream, body: Buffer, trailers: http2.OutgoingHttpHeaders = { 'grpc-status': '0' }): void {
  stream.respond(grpcHeaders, { waitForTrailers: true });
  stream.once('wantTrailers', () => stream.sendTrailers(trailers));
  stream.end(body);
}

test('unary client: a compressed response, two messages, a cut message, no status or data after the status are errors, not data', async (t) => {
  const cases: [string, (stream: http2.ServerHttp2Stream) => void, number][] = [
    ['compressed', (s) => answer(s, Buffer.from([1, 0, 0, 0, 1, 42])), GrpcStatus.INTERNAL],
    ['two messages', (s) => answer(s, Buffer.concat([frameMessage(Buffer.from('a')), frameMessage(Buffer.from('b'))])), GrpcStatus.INTERNAL],
    ['cut message', (s) => answer(s, frameMessage(Buffer.from('abcdef')).subarray(0, 7)), GrpcStatus.INTERNAL],
    ['no message', (s) => answer(s, Buffer.alloc(0)), GrpcStatus.INTERNAL],
    ['no status', (s) => answer(s, frameMessage(Buffer.from('a')), { 'x-other': '1' }), GrpcStatus.UNKNOWN],
    // A status in the response headers ends the call (trailers-only): a message after it is not the answer.
    ['data after a trailers-only status', (s) => { s.respond({ ...grpcHeaders, 'grpc-status': '0' }); s.end(frameMessage(Buffer.from('a'))); }, GrpcStatus.INTERNAL],
    ['not gRPC', (s) => { s.respond({ ':status': 200, 'content-type': 'text/html' }); s.end('<html>'); }, GrpcStatus.UNKNOWN],
    ['HTTP 503', (s) => { s.respond({ ':status': 503 }); s.end(); }, GrpcStatus.UNAVAILABLE],
    // The connection is fine: a stream that ends without a status is the peer's fault, not a lost plugin.
    ['no trailers at all', (s) => { s.respond(grpcHeaders); s.end(frameMessage(Buffer.from('a'))); }, GrpcStatus.INTERNAL],
    ['stream cancelled by the peer', (s) => s.close(http2.constants.NGHTTP2_CANCEL), GrpcStatus.CANCELLED],
    ['stream reset', (s) => s.close(http2.constants.NGHTTP2_INTERNAL_ERROR), GrpcStatus.INTERNAL],
  ];
  for (const [name, respond, code] of cases) {
    const socket = await rawServer(t, respond);
    const error = await failure(t, client(t, socket).call('/test.T/Echo', Buffer.from('x')));
    t.is(error.code, code, name);
  }
  // A status whose message is not valid percent-encoding is shown as sent.
  const socket = await rawServer(t, (s) => answer(s, Buffer.alloc(0), { 'grpc-status': '9', 'grpc-message': 'bad %zz %4' }));
  const error = await failure(t, client(t, socket).call('/test.T/Echo', Buffer.alloc(0)));
  t.deepEqual([error.code, error.details], [9, 'bad %zz %4']);
});

test('unary client: after the server sends GOAWAY and closes, the next call opens a new session', async (t) => {
  let sessions = 0;
  const seen = new WeakSet<object>();
  const socket = await rawServer(t, (stream, session) => {
    if (!seen.has(session)) {
      seen.add(session);
      sessions++;
    }
    answer(stream, frameMessage(Buffer.from(String(sessions))));
    session.close();
  });
  const c = client(t, socket);
  t.is((await c.call('/test.T/Echo', Buffer.alloc(0))).message.toString(), '1');
  await new Promise((r) => setTimeout(r, 50));
  t.is((await c.call('/test.T/Echo', Buffer.alloc(0))).message.toString(), '2');
});

test('unary client: a peer that dies fails the calls in flight as UNAVAILABLE, and a closed client refuses new ones', async (t) => {
  // A plugin that crashes mid-call: the host asks whether it exited only for UNAVAILABLE or CANCELLED.
  const socket = await rawServer(t, (_stream, session) => session.destroy());
  const c = client(t, socket);
  const error = await failure(t, c.call('/test.T/Echo', Buffer.alloc(0)));
  t.is(error.code, GrpcStatus.UNAVAILABLE, error.details);
  const dropped = await rawServer(t, (stream) => {
    stream.respond(grpcHeaders);
    stream.write(frameMessage(Buffer.from('partial')), () => stream.session?.destroy());
  });
  t.is((await failure(t, client(t, dropped).call('/test.T/Echo', Buffer.alloc(0)))).code, GrpcStatus.UNAVAILABLE, 'headers and a message, then the connection drops');
  c.destroy();
  t.is((await failure(t, c.call('/test.T/Echo', Buffer.alloc(0)))).code, GrpcStatus.UNAVAILABLE);
});

test('percent decoding: escapes become UTF-8, anything malformed is kept as written', (t) => {
  t.is(percentDecode('a%20b%C3%A9%25'), 'a bé%');
  t.is(percentDecode('%'), '%');
  t.is(percentDecode('%4'), '%4');
  t.is(percentDecode('100%'), '100%');
  t.is(percentDecode('plain'), 'plain');
});

test('unary client: a deadline weeks away is sent in a unit that fits 8 digits, and the call is not cut at once', async (t) => {
  t.is(timeoutHeader(1500), '1500m');
  t.is(timeoutHeader(99_999_999), '99999999m');
  t.is(timeoutHeader(100_000_000), '100000S');
  t.is(timeoutHeader(3e12), '50000000M');
  t.is(timeoutHeader(1e13), '2777778H');
  const { socket } = await grpcServer(t);
  // 40 days: past both grpc-timeout's 8 ms digits and what a Node timer holds.
  const response = await client(t, socket).call('/test.T/Echo', Buffer.from('late'), { deadline: Date.now() + 40 * 86_400_000 });
  t.deepEqual(response.message, Buffer.from('late'));
});

test('a call waiting for its connection to be proved ends at its deadline or its cancellation; a stream too', async (t) => {
  // A peer that accepts and never finishes the TLS handshake: the pin's verdict never comes.
  const socket = join(await tempDir(t), 'silent');
  const accepted = new Set<net.Socket>();
  const server = net.createServer((connection) => void accepted.add(connection));
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.teardown(() => {
    for (const connection of accepted) connection.destroy();
    server.close();
  });
  const c = client(t, socket, { ready: () => new Promise<void>(() => {}) });

  t.is((await failure(t, c.call('/test.T/Echo', Buffer.alloc(0), { deadline: Date.now() + 200 }))).code, GrpcStatus.DEADLINE_EXCEEDED);
  const abort = new AbortController();
  const cancelled = c.call('/test.T/Echo', Buffer.alloc(0), { signal: abort.signal });
  abort.abort();
  t.is((await failure(t, cancelled)).code, GrpcStatus.CANCELLED);
  const stream = c.stream('/test.T/Count', { deadline: Date.now() + 200, serialize: (m: Buffer) => m, deserialize: (m: Buffer) => m });
  const [error] = (await once(stream, 'error')) as [GrpcStatusError];
  t.is(error.code, GrpcStatus.DEADLINE_EXCEEDED);
  t.is(accepted.size, 1, 'the calls shared the one connection being proved');
});

/** A peer that accepts connections and never finishes a TLS handshake: the pin's verdict never comes. */
async function silentPeer(t: ExecutionContext): Promise<{ socket: string; accepted: () => number }> {
  const socket = join(await tempDir(t), 'silent');
  const connections = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((connection) => {
    accepted++;
    connections.add(connection);
    connection.resume();
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.teardown(() => {
    for (const connection of connections) connection.destroy();
    server.close();
  });
  return { socket, accepted: () => accepted };
}

test('calls that gave up waiting for a connection being proved (deadline, cancellation) leave nothing of theirs behind', async (t) => {
  // Attack: a plugin that stalls its TLS handshake; the host kept every call that gave up waiting for it.
  const { socket } = await silentPeer(t);
  const c = client(t, socket, { ready: () => new Promise<void>(() => {}) });
  const gone: WeakRef<AbortSignal>[] = [];
  // One call that gives up at its deadline and one cancelled; only their codes are kept (an error holds its
  // stack's closures, and with them what the caller passed).
  const giveUp = (): Promise<number | string>[] => {
    const byDeadline = new AbortController();
    const byCancel = new AbortController();
    gone.push(new WeakRef(byDeadline.signal), new WeakRef(byCancel.signal));
    const calls = [
      c.call('/test.T/Echo', Buffer.alloc(0), { deadline: Date.now() + 20, signal: byDeadline.signal }),
      c.call('/test.T/Echo', Buffer.alloc(0), { signal: byCancel.signal }),
    ];
    byCancel.abort();
    return calls.map((call) => call.then(() => 'ok', (error: GrpcStatusError) => error.code));
  };
  const codes = new Set(await Promise.all(Array.from({ length: 50 }, giveUp).flat()));
  t.deepEqual([...codes].sort(), [GrpcStatus.CANCELLED, GrpcStatus.DEADLINE_EXCEEDED].sort());
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  for (let round = 0; round < 3; round++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
  t.is(gone.filter((ref) => ref.deref() !== undefined).length, 0, 'calls that gave up are still held by the client');
});

test('a connection whose proof does not come within proofTimeoutMs is given up: the calls waiting for it fail, and the next call connects anew', async (t) => {
  // Attack: a plugin that accepts the host's connection and never finishes its handshake wedged the client for good.
  const { socket: silent, accepted } = await silentPeer(t);
  const { socket: good } = await grpcServer(t);
  const toSilent = new WeakSet<object>();
  const c = client(t, silent, {
    // The first connection goes to the silent peer and is never proved; the next ones to a server that answers.
    connect: () => {
      if (accepted() > 0 || toSilent.has(c)) return net.connect(good);
      toSilent.add(c);
      const connection = net.connect(silent);
      toSilent.add(connection);
      return connection;
    },
    ready: (connection) => (toSilent.has(connection) ? new Promise<void>(() => {}) : Promise.resolve()),
    proofTimeoutMs: 100,
  });
  const error = await failure(t, c.call('/test.T/Echo', Buffer.alloc(0), { deadline: Date.now() + 60_000 }));
  t.is(error.code, GrpcStatus.UNAVAILABLE);
  t.regex(error.details, /did not finish .*handshake within 100 ms/);
  t.is(accepted(), 1);
  const response = await c.call('/test.T/Echo', Buffer.from('again'), { deadline: Date.now() + 60_000 });
  t.is(response.message.toString(), 'again');
});

test('a connection that fails its proof fails the calls waiting for it, with the reason, and nothing of HTTP/2 is written on it', async (t) => {
  const socket = join(await tempDir(t), 'refused');
  let received = 0;
  const server = net.createServer((connection) => connection.on('data', (chunk: Buffer) => (received += chunk.length)));
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.teardown(() => server.close());
  const c = client(t, socket, { ready: () => Promise.reject(new Error('not the announced certificate')) });
  const error = await failure(t, c.call('/test.T/Echo', Buffer.alloc(0), { deadline: Date.now() + 5000 }));
  t.is(error.code, GrpcStatus.UNAVAILABLE);
  t.regex(error.details, /cannot connect: not the announced certificate/);
  t.is(received, 0);
});

test('a client destroyed as its first session opens (the plugin killed or gone at that moment) fails the call, and throws nothing uncaught', async (t) => {
  const server = net.createServer((socket) => socket.resume());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const { port } = server.address() as net.AddressInfo;
  const uncaught: unknown[] = [];
  const record = (error: unknown): void => void uncaught.push(error);
  process.on('uncaughtException', record);
  t.teardown(() => process.off('uncaughtException', record));
  const client: GrpcHttp2Client = new GrpcHttp2Client({
    connect: () => net.connect(port, '127.0.0.1'),
    // The connection is proved; the destroy lands after the session is made, before node:http2 emits its 'connect'.
    ready: (connection) =>
      new Promise((resolve) =>
        connection.once('connect', () => {
          resolve();
          void Promise.resolve()
            .then(() => undefined)
            .then(() => undefined)
            .then(() => client.destroy());
        }),
      ),
    authority: 'localhost',
    maxReceiveMessageBytes: 1 << 20,
    maxSendMessageBytes: 1 << 20,
    windowBytes: 1 << 20,
  });
  const error = await t.throwsAsync(client.call('/kv.KV/Get', Buffer.alloc(1)));
  t.is((error as GrpcStatusError).code, GrpcStatus.UNAVAILABLE, String(error));
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.deepEqual(uncaught.map(String), []);
});

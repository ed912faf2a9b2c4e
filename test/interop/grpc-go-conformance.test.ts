// Conformance of the lean client (src/transport/grpc-http2-client.ts, its unary calls and its streams)
// against grpc-go itself: a plain grpc-go server (test/interop/go/grpcpeer), one test per behaviour that
// test/transport/grpc-http2-client.test.ts and grpc-http2-stream.test.ts check against grpc-js's server. Plain HTTP/2 over a unix
// socket: what is under test is the gRPC protocol, not the pinned TLS (every Go interop test has that).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { loadKVService } from '../../examples/kv/kv.js';
import { GrpcStatus, GrpcStatusError, GrpcHttp2Client, type UnaryCallOptions } from '../../src/transport/grpc-http2-client.js';
import { goTest, type GoBinaries } from './go-binaries.js';

const kv = loadKVService();

interface Peer {
  child: ChildProcessWithoutNullStreams;
  /** The JSON lines it has printed so far. */
  lines: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
}

async function startPeer(t: ExecutionContext, go: GoBinaries, socket: string): Promise<Peer> {
  const child = spawn(go.grpcpeer, ['-socket', socket], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  const lines: Array<Record<string, unknown>> = [];
  let pending = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const complete = pending.split('\n');
      pending = complete.pop() ?? '';
      for (const line of complete) {
        if (line === 'listening') resolve();
        else if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
      }
    });
    void exited.then((code) => reject(new Error(`grpcpeer exited (${code}) before listening: ${stderr}`)));
  });
  return { child, lines, exited };
}

async function setUp(t: ExecutionContext, go: GoBinaries, limits: { receive?: number; send?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-grpc-go-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, 'peer.sock');
  const peer = await startPeer(t, go, socket);
  const client = new GrpcHttp2Client({
    connect: () => net.connect(socket),
    authority: 'localhost',
    maxReceiveMessageBytes: limits.receive ?? 4 << 20,
    maxSendMessageBytes: limits.send ?? 4 << 20,
    windowBytes: 1 << 20,
  });
  t.teardown(() => client.destroy());
  const get = async (key: string, options?: UnaryCallOptions) => {
    const response = await client.call(kv.Get.path, kv.Get.requestSerialize({ key }), options);
    return { value: kv.Get.responseDeserialize(response.message).value, metadata: response.metadata };
  };
  return { socket, peer, client, get };
}

async function failure(t: ExecutionContext, call: Promise<unknown>): Promise<GrpcStatusError> {
  const error = await t.throwsAsync(call);
  t.true(error instanceof GrpcStatusError, String(error));
  return error as GrpcStatusError;
}

async function waitFor(lines: Array<Record<string, unknown>>, key: string): Promise<Record<string, unknown> | undefined> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const found = lines.find((line) => line[key] !== undefined);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return undefined;
}

goTest('grpc-go conformance: a call and its response, a large request, many at once on one session', async (t, go) => {
  const { get } = await setUp(t, go);
  t.is(Buffer.from((await get('hi')).value).toString(), 'hi');
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => get(`k${i}`)));
  answers.forEach((answer, i) => t.is(Buffer.from(answer.value).toString(), `k${i}`));
  // A request over 16 KiB goes out as its prefix and itself (no copy); the echo shows it arrived whole.
  const long = 'x'.repeat(300 * 1024) + 'end';
  t.is(Buffer.from((await get(long)).value).toString(), long);
});

goTest('grpc-go conformance: a status sent before any message (trailers-only) arrives with its code and percent-decoded message', async (t, go) => {
  const { get } = await setUp(t, go);
  const error = await failure(t, get('fail'));
  t.is(error.code, 9); // FAILED_PRECONDITION
  t.is(error.details, 'naïve 100% wrong\nsecond line');
});

goTest('grpc-go conformance: metadata goes out (text and -bin) and comes back from headers and trailers', async (t, go) => {
  const { get } = await setUp(t, go);
  const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff]);
  const { value, metadata } = await get('meta', { metadata: [['x-text', 'hello there'], ['x-bin', bytes]] });
  t.is(Buffer.from(value).toString(), 'ok');
  t.deepEqual(metadata.get('echo-text'), ['hello there']);
  t.deepEqual(metadata.get('echo-bin'), [bytes]);
});

goTest('grpc-go conformance: a deadline reaches grpc-go as grpc-timeout, cancels the call there, and the session stays usable', async (t, go) => {
  const { peer, get } = await setUp(t, go);
  // Long enough for grpc-go to start the handler on a loaded machine; it says when it has.
  const call = get('hang', { deadline: Date.now() + 2000 });
  t.truthy(await waitFor(peer.lines, 'started'), 'grpc-go started the call');
  const error = await failure(t, call);
  t.is(error.code, GrpcStatus.DEADLINE_EXCEEDED);
  t.deepEqual(await waitFor(peer.lines, 'cancelled'), { cancelled: true, deadline: true });
  t.is(Buffer.from((await get('after')).value).toString(), 'after');
});

goTest('grpc-go conformance: an AbortSignal cancels the call on the server too', async (t, go) => {
  const { peer, get } = await setUp(t, go);
  const controller = new AbortController();
  const call = get('hang', { signal: controller.signal });
  t.truthy(await waitFor(peer.lines, 'started'), 'grpc-go started the call');
  controller.abort();
  t.is((await failure(t, call)).code, GrpcStatus.CANCELLED);
  t.deepEqual(await waitFor(peer.lines, 'cancelled'), { cancelled: true, deadline: false });
});

goTest('grpc-go conformance: messages over the receive or send limit are RESOURCE_EXHAUSTED, and the next call works', async (t, go) => {
  const { client, get } = await setUp(t, go, { receive: 1 << 20, send: 64 * 1024 });
  const tooBig = await failure(t, get(`big:${2 << 20}`));
  t.is(tooBig.code, GrpcStatus.RESOURCE_EXHAUSTED);
  t.regex(tooBig.details, /larger than max/);
  t.is((await get(`big:${1000}`)).value.length, 1000);
  const put = kv.Put.requestSerialize({ key: 'k', value: Buffer.alloc(100 * 1024) });
  t.is((await failure(t, client.call(kv.Put.path, put))).code, GrpcStatus.RESOURCE_EXHAUSTED);
  t.is(Buffer.from((await get('still')).value).toString(), 'still');
});

goTest('grpc-go conformance: after grpc-go sends GOAWAY and stops, the next call opens a new session to its successor', async (t, go) => {
  const { socket, peer, get } = await setUp(t, go);
  t.is(Buffer.from((await get('before')).value).toString(), 'before');
  // GracefulStop: a GOAWAY on every connection, then the listener and the process go.
  peer.child.kill('SIGTERM');
  t.is(await peer.exited, 0);
  await startPeer(t, go, socket);
  t.is(Buffer.from((await get('after')).value).toString(), 'after');
});

// The lean client's streams (go-plugin's broker and stdio, typed clients' server streams) against
// grpc-go's stream.S (grpcpeer): a server stream and a bidi stream, written out by hand in the fixture.
const streamCodec = { serialize: kv.Get.requestSerialize, deserialize: kv.Get.responseDeserialize };

/** Reads a stream to its end or its error, `eachMs` per message (a slow reader), keeping each value's index. */
async function readAll(call: AsyncIterable<{ value: Uint8Array }>, eachMs = 0): Promise<{ indexes: number[]; error?: GrpcStatusError }> {
  const indexes: number[] = [];
  try {
    for await (const { value } of call) {
      indexes.push(Buffer.from(value).readUInt32BE(0));
      if (eachMs > 0) await new Promise((resolve) => setTimeout(resolve, eachMs));
    }
    return { indexes };
  } catch (error) {
    if (!(error instanceof GrpcStatusError)) throw error;
    return { indexes, error };
  }
}

goTest('grpc-go conformance, streams: a slow reader of a server stream gets every message in order, then a clean end', async (t, go) => {
  const { client } = await setUp(t, go);
  const call = client.stream('/stream.S/Count', streamCodec);
  call.end({ key: '200' });
  // grpc-go is done, and its trailers in, long before this reader has taken the 1.6 MB it sent.
  const { indexes, error } = await readAll(call, 2);
  t.is(error, undefined);
  t.deepEqual(indexes, Array.from({ length: 200 }, (_, i) => i));
});

goTest('grpc-go conformance, streams: messages then a status other than OK give every message, then the error', async (t, go) => {
  const { client } = await setUp(t, go);
  const call = client.stream('/stream.S/Count', streamCodec);
  call.end({ key: '50:fail' });
  const { indexes, error } = await readAll(call, 5);
  t.deepEqual(indexes, Array.from({ length: 50 }, (_, i) => i));
  t.is(error?.code, 9); // FAILED_PRECONDITION
  t.is(error?.details, 'failed after 50');
});

goTest('grpc-go conformance, streams: a bidi stream echoes each request, and ends when the requests end', async (t, go) => {
  const { client } = await setUp(t, go);
  const call = client.stream('/stream.S/Echo', streamCodec);
  const received: string[] = [];
  const done = (async () => {
    for await (const { value } of call as AsyncIterable<{ value: Uint8Array }>) received.push(Buffer.from(value).toString());
  })();
  for (const key of ['a', 'b', 'c']) call.write({ key });
  call.end();
  await done;
  t.deepEqual(received, ['a', 'b', 'c']);
});

goTest('grpc-go conformance, streams: cancel() and a deadline end the stream on grpc-go too', async (t, go) => {
  const { peer, client } = await setUp(t, go);
  const cancelled = client.stream('/stream.S/Count', streamCodec);
  cancelled.end({ key: 'hang' });
  const outcome = readAll(cancelled as AsyncIterable<{ value: Uint8Array }>);
  t.truthy(await waitFor(peer.lines, 'started'), 'grpc-go started the call');
  cancelled.cancel();
  t.is((await outcome).error?.code, GrpcStatus.CANCELLED);
  t.deepEqual(await waitFor(peer.lines, 'cancelled'), { cancelled: true, deadline: false });

  peer.lines.length = 0;
  const timed = client.stream('/stream.S/Count', { ...streamCodec, deadline: Date.now() + 2000 });
  timed.end({ key: 'hang' });
  t.truthy(await waitFor(peer.lines, 'started'), 'grpc-go started the second call');
  t.is((await readAll(timed as AsyncIterable<{ value: Uint8Array }>)).error?.code, GrpcStatus.DEADLINE_EXCEEDED);
  t.deepEqual(await waitFor(peer.lines, 'cancelled'), { cancelled: true, deadline: true });
});

// A peer holding streams open on one connection to a gRPC server of ours: the host's brokered servers
// (a plugin dials them) cap them; serve()'s server (the plugin's own host dials it) does not. Each open stream costs the server a call's
// state; the peer pays a few bytes of HEADERS for it.
import { mkdtemp, rm } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { silentLogger } from '../../src/logger.js';
import { startServing } from '../../src/plugin/serve.js';
import { loneBroker } from '../helpers/lone-broker.js';
import { buildPluginEnv } from '../../src/transport/env.js';
import { parseHandshakeLine } from '../../src/transport/handshake.js';
import { MAX_PEER_CONCURRENT_STREAMS } from '../../src/transport/limits.js';
import { emptyCodec, streamingMethod, type Empty } from '../../src/transport/protobuf.js';
import { StdioChannel } from '../../src/transport/stdio.js';
import { waitUntil } from '../helpers/process.js';

/** Streams the hostile peer opens: ten times what a server of ours may hold. */
const STREAMS = 10 * MAX_PEER_CONCURRENT_STREAMS;
/** Only a server that never answers could take this long; typical runs take well under a second. */
const SETTLE_MS = 20_000;

const holdService = {
  Hold: streamingMethod('/hostile.Hold/Hold', emptyCodec, emptyCodec, { requestStream: true, responseStream: true }),
} satisfies grpc.ServiceDefinition;

/** A bidi method whose handler runs when a stream's headers arrive and never ends the call: it counts the streams held. */
function holdImplementation(held: { count: number }): grpc.UntypedServiceImplementation {
  const hold: grpc.handleBidiStreamingCall<Empty, Empty> = (call) => {
    held.count++;
    call.on('error', () => {});
  };
  return { Hold: hold };
}

/** One HPACK literal header field without indexing, new name, no Huffman (names and values under 127 bytes). */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header.writeUInt8(type, 3);
  header.writeUInt8(flags, 4);
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

const FRAME_HEADERS = 1;
const FRAME_RST_STREAM = 3;
const FRAME_SETTINGS = 4;
const FRAME_GOAWAY = 7;
const END_HEADERS = 4;

/**
 * A hostile HTTP/2 client written frame by frame (node:http2 would hold back streams past the server's
 * limit): it opens `count` streams with request headers and never ends one, ignoring what the server
 * announces. Resolves with how many streams the server refused, once every stream is accounted for or
 * the connection ends.
 */
function holdStreams(path: string, method: string, count: number, held: { count: number }): Promise<{ refused: number; goaway: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(path);
    const headers = Buffer.concat([
      literal(':method', 'POST'),
      literal(':scheme', 'http'),
      literal(':path', method),
      literal(':authority', 'localhost'),
      literal('content-type', 'application/grpc'),
      literal('te', 'trailers'),
    ]);
    const out = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0))];
    for (let i = 0; i < count; i++) out.push(frame(FRAME_HEADERS, END_HEADERS, 2 * i + 1, headers));
    socket.write(Buffer.concat(out));
    let refused = 0;
    let goaway = false;
    let input = Buffer.alloc(0);
    const done = (): void => {
      socket.destroy();
      resolve({ refused, goaway });
    };
    socket.on('data', (chunk: Buffer) => {
      input = Buffer.concat([input, chunk]);
      while (input.length >= 9) {
        const length = input.readUIntBE(0, 3);
        if (input.length < 9 + length) break;
        const type = input.readUInt8(3);
        if (type === FRAME_RST_STREAM) refused++;
        if (type === FRAME_GOAWAY) goaway = true;
        input = input.subarray(9 + length);
      }
      if (goaway || refused + held.count >= count) done();
    });
    socket.on('error', done);
    socket.on('close', done);
  });
}

async function assertBounded(t: ExecutionContext, path: string, held: { count: number }): Promise<void> {
  const { refused, goaway } = await holdStreams(path, holdService.Hold.path, STREAMS, held);
  // Handlers of streams the server took may still be on their way: wait until every stream is accounted for.
  await waitUntil(() => goaway || refused + held.count >= STREAMS, SETTLE_MS);
  t.true(held.count <= MAX_PEER_CONCURRENT_STREAMS, `the server held ${held.count} streams of one connection`);
  t.true(goaway || refused >= STREAMS - MAX_PEER_CONCURRENT_STREAMS, `refused ${refused} streams, no GOAWAY`);
}

test('streams: a plugin holding streams open on a connection to a host brokered server gets at most MAX_PEER_CONCURRENT_STREAMS of them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-streams-'));
  const held = { count: 0 };
  const broker = loneBroker({
    socketDir: async () => dir,
    checkAddress: async (_network, address) => ({ address, release: async () => {} }),
  });
  const announced: string[] = [];
  broker.attach({ send: (info) => void announced.push(info.address), close: () => {} });
  try {
    await broker.serve([{ definition: holdService, implementation: holdImplementation(held) }]);
    await assertBounded(t, announced[0]!, held);
  } finally {
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  }
});

// The plugin's own host is not capped: it is the side the plugin trusts (it holds the plugin's key and can kill it),
// and go-plugin hosts hold as many long-lived streams as they need; capped, its 101st call stalled until its deadline.
test("streams: serve()'s server takes more than MAX_PEER_CONCURRENT_STREAMS streams at once from its own host", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-streams-'));
  const held = { count: 0 };
  const cookie = { key: 'GATEHOUSE_STREAMS_TEST', value: 'streams' };
  const discard = (_data: Buffer, done?: (error?: Error | null) => void): void => done?.();
  let line = '';
  const started = await startServing(
    { cookie, versions: { 1: [{ definition: holdService, implementation: holdImplementation(held) }] }, allowPlaintext: true },
    {
      env: buildPluginEnv({ cookie, protocolVersions: [1], unixSocketDir: dir }),
      logger: silentLogger,
      pipes: { [StdioChannel.STDOUT]: discard, [StdioChannel.STDERR]: discard },
      announce: (announced) => (line = announced),
      forwardOutput: () => {},
      watch: () => () => {},
      exit: () => {},
    },
  );
  try {
    const wanted = 2 * MAX_PEER_CONCURRENT_STREAMS;
    const { refused } = await holdStreams(parseHandshakeLine(line, [1]).address, holdService.Hold.path, wanted, held);
    t.is(refused, 0);
    t.true(await waitUntil(() => held.count >= wanted, SETTLE_MS), `the plugin took ${held.count} of ${wanted} streams`);
  } finally {
    await started.shutdown();
    await rm(dir, { recursive: true, force: true });
  }
});

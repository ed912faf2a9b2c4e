// yamux, as go-plugin >= 1.6 multiplexes a plugin's connection: behaviour between two sessions, and
// what a peer sending bad frames gets. test/interop/yamux.test.ts runs it against hashicorp/yamux.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import test from 'ava';
import { MAX_PEER_STREAMS, STREAM_WINDOW_BYTES, YamuxSession } from '../../src/transport/yamux.js';
import { readAll } from '../helpers/streams.js';

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-yamux-test-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

/** Two connected sockets over a unix socket in a private directory. */
async function socketPair(): Promise<[Socket, Socket]> {
  const path = join(dir, `pair-${counter++}.sock`);
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer((socket) => {
      server.close();
      resolve(socket);
    }).listen(path);
  });
  const client = connect(path);
  return [client, await accepted];
}

async function sessionPair(): Promise<[YamuxSession, YamuxSession]> {
  const [a, b] = await socketPair();
  return [new YamuxSession(a, 'client'), new YamuxSession(b, 'server')];
}


/** Echoes everything, then half-closes. */
function echo(stream: Duplex): void {
  void readAll(stream).then((data) => stream.end(data));
}

function frame(type: number, flags: number, id: number, length: number, payload = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt8(0, 0);
  header.writeUInt8(type, 1);
  header.writeUInt16BE(flags, 2);
  header.writeUInt32BE(id, 4);
  header.writeUInt32BE(length, 8);
  return Buffer.concat([header, payload]);
}

interface Frame {
  type: number;
  flags: number;
  id: number;
  length: number;
}

/** Frames the session sends to a raw socket, parsed (data payloads skipped). */
function frames(socket: Socket): Frame[] {
  const seen: Frame[] = [];
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 12) {
      const f = { type: buffered.readUInt8(1), flags: buffered.readUInt16BE(2), id: buffered.readUInt32BE(4), length: buffered.readUInt32BE(8) };
      const size = 12 + (f.type === 0 ? f.length : 0);
      if (buffered.length < size) break;
      seen.push(f);
      buffered = buffered.subarray(size);
    }
  });
  return seen;
}

async function until(condition: () => boolean): Promise<void> {
  const end = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('yamux: streams opened by either side carry 1 MiB each way, four times the window', async (t) => {
  const [client, server] = await sessionPair();
  server.on('stream', echo);
  client.on('stream', echo);
  const payloads = [randomBytes(1024 * 1024), randomBytes(1024 * 1024), randomBytes(1024 * 1024)];
  t.true(payloads[0]!.length >= 4 * STREAM_WINDOW_BYTES);
  const fromClient = payloads.map(async (payload) => {
    const stream = client.open();
    stream.end(payload);
    return readAll(stream);
  });
  const fromServer = (async () => {
    const stream = server.open();
    stream.end(payloads[0]);
    return readAll(stream);
  })();
  const echoed = await Promise.all(fromClient);
  echoed.forEach((data, i) => t.true(data.equals(payloads[i]!), `stream ${i} came back intact`));
  t.true((await fromServer).equals(payloads[0]!), 'a stream the server opened works the same');
  client.close();
  server.close();
});

test('yamux: a stream destroyed on one side is reset on the other', async (t) => {
  const [client, server] = await sessionPair();
  const accepted = new Promise<Duplex>((resolve) => server.once('stream', resolve));
  const stream = client.open();
  stream.write('hello');
  const peer = await accepted;
  const failed = new Promise<Error>((resolve) => peer.once('error', resolve));
  peer.resume();
  stream.destroy();
  t.is(((await failed) as NodeJS.ErrnoException).code, 'ECONNRESET');
  client.close();
  server.close();
});

test('yamux: a ping is answered with its own value, and a normal GoAway stops new streams', async (t) => {
  const [raw, other] = await socketPair();
  const session = new YamuxSession(other, 'server');
  const seen = frames(raw);
  raw.write(frame(2, 1, 0, 0xdead));
  await until(() => seen.length > 0);
  t.deepEqual(seen[0], { type: 2, flags: 2, id: 0, length: 0xdead });
  raw.write(frame(3, 0, 0, 0));
  await until(() => {
    try {
      session.open().destroy();
      return false;
    } catch {
      return true;
    }
  });
  t.throws(() => session.open(), { message: /accepts no new yamux streams/ });
  raw.destroy();
});

for (const [title, bytes] of [
  ['a data frame larger than the window', Buffer.concat([frame(1, 1, 1, 0), frame(0, 0, 1, STREAM_WINDOW_BYTES + 1)])],
  ['data beyond what the window has left', Buffer.concat([frame(1, 1, 1, 0), frame(0, 0, 1, STREAM_WINDOW_BYTES, Buffer.alloc(STREAM_WINDOW_BYTES)), frame(0, 0, 1, 1, Buffer.alloc(1))])],
  ['a stream id of the wrong parity', frame(1, 1, 2, 0)],
  ['stream id 0', frame(1, 1, 0, 0)],
  ['the same stream opened twice', Buffer.concat([frame(1, 1, 1, 0), frame(1, 1, 1, 0)])],
  ['an unknown protocol version', Buffer.from([1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])],
  ['an unknown frame type', frame(9, 0, 0, 0)],
] as const) {
  test(`yamux: ${title} ends the session with a protocol error (GoAway 1)`, async (t) => {
    // Attack: a peer that makes us buffer without bound, or confuses one stream with another.
    const [raw, other] = await socketPair();
    const session = new YamuxSession(other, 'server');
    const closed = new Promise<Error | undefined>((resolve) => session.once('close', resolve));
    const seen = frames(raw);
    raw.write(bytes);
    t.truthy(await closed, 'the session reports why it closed');
    await until(() => seen.some((f) => f.type === 3));
    t.deepEqual(seen.find((f) => f.type === 3), { type: 3, flags: 0, id: 0, length: 1 });
    raw.destroy();
  });
}

test('yamux: a peer holding more than MAX_PEER_STREAMS streams open gets the extra ones reset', async (t) => {
  const [raw, other] = await socketPair();
  const session = new YamuxSession(other, 'server');
  let accepted = 0;
  session.on('stream', () => void accepted++);
  const seen = frames(raw);
  const opens = Array.from({ length: MAX_PEER_STREAMS + 1 }, (_, i) => frame(1, 1, 2 * i + 1, 0));
  raw.write(Buffer.concat(opens));
  const lastId = 2 * MAX_PEER_STREAMS + 1;
  await until(() => seen.some((f) => f.id === lastId));
  t.is(accepted, MAX_PEER_STREAMS);
  t.deepEqual(seen.find((f) => f.id === lastId), { type: 1, flags: 8, id: lastId, length: 0 });
  raw.destroy();
  session.close();
});

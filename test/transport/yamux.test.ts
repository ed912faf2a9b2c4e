// yamux, as go-plugin >= 1.6 multiplexes a plugin's connection: behaviour between two sessions, and
// what a peer sending bad frames gets. test/interop/yamux.test.ts runs it against hashicorp/yamux.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import test from 'ava';
import { MAX_PEER_STREAMS, READ_PAUSE_BYTES, STREAM_WINDOW_BYTES, WRITE_BUFFER_CAP_BYTES, YamuxSession } from '../../src/transport/yamux.js';
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

test('yamux: a reader that takes a whole window in one read still gives the peer its credit back', async (t) => {
  // A slow reader (a loaded machine) finds the peer's whole window buffered and takes it in one read():
  // Node calls _read before it removes what that read returns, so credit reckoned then saw a full buffer,
  // sent nothing, and the stream waited forever for a push the peer had no window left to send.
  const [client, server] = await sessionPair();
  const payload = randomBytes(3 * STREAM_WINDOW_BYTES);
  server.on('stream', (stream: Duplex) => stream.end(payload));
  const stream = client.open();
  stream.end();
  const deadline = Date.now() + 10_000;
  while (stream.readableLength < STREAM_WINDOW_BYTES && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  t.is(stream.readableLength, STREAM_WINDOW_BYTES, 'the whole window is buffered, unread');
  const first = stream.read() as Buffer;
  t.is(first.length, STREAM_WINDOW_BYTES);
  const rest = await Promise.race([readAll(stream), new Promise<'stuck'>((resolve) => setTimeout(() => resolve('stuck'), 10_000))]);
  t.not(rest, 'stuck', 'the rest of the stream arrives');
  if (rest !== 'stuck') t.true(Buffer.concat([first, rest]).equals(payload));
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
    session.on('stream', () => {});
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

const MiB = 1024 * 1024;

test('yamux: a stream nobody wants is refused with one RST: no ACK, no stream', async (t) => {
  // Attack: a peer opening streams we did not ask for, each costing an ACK, a stream and a reset.
  const [raw, other] = await socketPair();
  const session = new YamuxSession(other, 'client');
  const seen = frames(raw);
  raw.write(Buffer.concat([frame(1, 1, 2, 0), frame(1, 1, 4, 0), frame(1, 1, 6, 0)]));
  await until(() => seen.length >= 3);
  t.deepEqual(seen, [2, 4, 6].map((id) => ({ type: 1, flags: 8, id, length: 0 })));
  session.close();
  raw.destroy();
});

for (const [what, flood] of [
  ['pings', (i: number) => frame(2, 1, 0, i)],
  ['SYNs for unwanted streams', (i: number) => frame(1, 1, 2 * i + 2, 0)],
] as const) {
  test(`yamux: a peer flooding ${what} without reading ends with a protocol error, with our unsent replies bounded`, async (t) => {
    // Attack: every ping or SYN answered through a write nobody reads grows our memory without bound.
    const [raw, other] = await socketPair();
    const session = new YamuxSession(other, 'client');
    raw.on('error', () => {});
    const closed = new Promise<Error | undefined>((resolve) => session.once('close', resolve));
    let ended: Error | undefined | null = null;
    void closed.then((error) => (ended = error));
    let sent = 0;
    let maxQueued = 0;
    let next = 0;
    // Far more than the kernel's socket buffers and our caps hold: the old code answered it all.
    while (ended === null && sent < 16 * MiB && !raw.destroyed) {
      const chunk = Buffer.concat(Array.from({ length: 4096 }, () => flood(next++)));
      sent += chunk.length;
      maxQueued = Math.max(maxQueued, other.writableLength);
      if (!raw.write(chunk)) {
        await Promise.race([new Promise((resolve) => raw.once('drain', resolve)), closed]);
      }
      maxQueued = Math.max(maxQueued, other.writableLength);
    }
    t.log(`${(sent / MiB).toFixed(1)} MiB of ${what} sent; at most ${maxQueued} bytes queued for the peer`);
    t.truthy(await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve(undefined), 10_000))]), 'the session ended with a protocol error');
    t.regex(String(ended), /without reading our replies/);
    t.true(maxQueued <= READ_PAUSE_BYTES + 64 * 1024, `${maxQueued} bytes queued`);
    raw.destroy();
  });
}

test('yamux: stream data waits while the connection is congested, then all of it arrives', async (t) => {
  // Attack: a peer granting a huge window and never reading, so that every byte we write is queued.
  const [raw, other] = await socketPair();
  const session = new YamuxSession(other, 'client');
  const accepted = new Promise<Duplex>((resolve) => session.once('stream', resolve));
  raw.pause();
  raw.write(frame(1, 1, 2, 0x7fff_0000));
  const stream = await accepted;
  const payload = Buffer.alloc(8 * MiB, 7);
  const written = new Promise<void>((resolve) => stream.write(payload, () => resolve()));
  // The stream's write ran at once: what it queued on the connection is all there is.
  t.true(other.writableLength <= WRITE_BUFFER_CAP_BYTES + 64 * 1024 + 12, `${other.writableLength} bytes queued`);
  let received = 0;
  raw.on('data', (chunk: Buffer) => void (received += chunk.length));
  raw.resume();
  await written;
  await until(() => received >= payload.length + Math.ceil(payload.length / (64 * 1024)) * 12);
  t.pass();
  session.close();
  raw.destroy();
});

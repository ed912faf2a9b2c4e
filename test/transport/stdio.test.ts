// The plugin side of GRPCStdio while no host reads it, or reads it slowly: bounded, and nothing lost.
import { EventEmitter } from 'node:events';
import test from 'ava';
import { MAX_WAITING_STDIO_BYTES, StdioChannel, StdioForwarder, type StdioData, type StdioPipes } from '../../src/transport/stdio.js';

/** Pipes that record what they are given; `room` is what their write() returns (false: a full pipe). */
function recordingPipes(room = true): { pipes: StdioPipes; written: Array<[StdioChannel, number]> } {
  const written: Array<[StdioChannel, number]> = [];
  const pipe = (channel: StdioChannel) => (data: Buffer, done?: (error?: Error | null) => void) => {
    written.push([channel, data.length]);
    done?.();
    return room;
  };
  return { written, pipes: { [StdioChannel.STDOUT]: pipe(StdioChannel.STDOUT), [StdioChannel.STDERR]: pipe(StdioChannel.STDERR) } };
}

test('stdio: past the bound with no host reading, output goes to the real pipes, in order and complete', (t) => {
  // Attack surface: a plugin printing with nobody listening must not grow its own memory without bound.
  const recorder = recordingPipes();
  const forwarder = new StdioForwarder(recorder.pipes, 60_000);
  const chunk = Buffer.alloc(1024 * 1024);
  let calledBack = 0;
  for (let i = 0; i < 9; i++) forwarder.write(i % 2 ? StdioChannel.STDERR : StdioChannel.STDOUT, chunk, () => calledBack++);
  t.true(9 * chunk.length > MAX_WAITING_STDIO_BYTES);
  t.deepEqual(recorder.written.map(([channel]) => channel), [1, 2, 1, 2, 1, 2, 1, 2, 1]);
  t.is(calledBack, 9, "every writer's callback ran");
  forwarder.write(StdioChannel.STDOUT, Buffer.from('later'));
  t.is(recorder.written.length, 10, 'later output goes straight to the pipe');
});

test('stdio: when no host asks for stdio in time, what waited goes to the real pipes', async (t) => {
  const recorder = recordingPipes();
  const forwarder = new StdioForwarder(recorder.pipes, 100);
  forwarder.write(StdioChannel.STDOUT, Buffer.from('early\n'));
  t.is(recorder.written.length, 0, 'it waits for a host at first');
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.deepEqual(recorder.written, [[StdioChannel.STDOUT, 6]]);
});

/** A host's StreamStdio call that takes messages only when the test says: each write waits for `take`. */
function heldReader(forwarder: StdioForwarder): { sent: StdioData[]; take: () => void } {
  const sent: StdioData[] = [];
  const callbacks: Array<() => void> = [];
  const call = Object.assign(new EventEmitter(), {
    write: (message: StdioData, done?: () => void) => {
      sent.push(message);
      if (done) callbacks.push(done);
      return true;
    },
    end: () => {},
  });
  (forwarder.implementation() as { StreamStdio(call: unknown): void }).StreamStdio(call);
  return { sent, take: () => callbacks.splice(0).forEach((done) => done()) };
}

test('stdio: while a host streams, write() returns false once the unsent bytes pass the high-water mark, and drain comes when they are sent', async (t) => {
  // Attack surface: a plugin piping into process.stdout while the host reads slowly must pause, not queue.
  const forwarder = new StdioForwarder(recordingPipes().pipes, 60_000);
  const reader = heldReader(forwarder);
  let accepted = 0;
  while (forwarder.write(StdioChannel.STDOUT, Buffer.alloc(1024)) && accepted < 2 * MAX_WAITING_STDIO_BYTES) accepted += 1024;
  t.true(accepted < MAX_WAITING_STDIO_BYTES, `write() said false after ${accepted} bytes`);
  t.false(forwarder.write(StdioChannel.STDERR, Buffer.from('still not sent\n')));
  const drained: StdioChannel[] = [];
  forwarder.on('drain', (channel) => drained.push(channel));
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(drained, [], 'no drain while the host has not taken the output');
  reader.take();
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(drained.sort(), [StdioChannel.STDOUT, StdioChannel.STDERR]);
  t.true(forwarder.write(StdioChannel.STDOUT, Buffer.from('more\n')));
});

test('stdio: a host that stops reading its stream holds at most the bound; past it output goes to the real pipes', (t) => {
  // Attack surface: console.log does not heed write()'s false; a stalled host must not grow the plugin without bound.
  const recorder = recordingPipes();
  const forwarder = new StdioForwarder(recorder.pipes, 60_000);
  const reader = heldReader(forwarder);
  const chunk = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < 12; i++) forwarder.write(StdioChannel.STDOUT, chunk);
  const streamed = reader.sent.reduce((sum, message) => sum + message.data.length, 0);
  t.true(streamed <= MAX_WAITING_STDIO_BYTES + chunk.length, `${streamed} bytes wait in the stream`);
  t.is(streamed + recorder.written.reduce((sum, [, length]) => sum + length, 0), 12 * chunk.length, 'nothing lost');
});

test('stdio: write() says whether to go on: true while little waits for a host, what the real pipe said once output goes there', (t) => {
  t.true(new StdioForwarder(recordingPipes().pipes, 60_000).write(StdioChannel.STDOUT, Buffer.from('x')));
  const recorder = recordingPipes(false);
  const forwarder = new StdioForwarder(recorder.pipes, 60_000);
  forwarder.end();
  t.false(forwarder.write(StdioChannel.STDOUT, Buffer.from('a full pipe\n')), 'a full pipe pushes back through the forwarder');
});

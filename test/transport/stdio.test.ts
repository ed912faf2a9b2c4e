// The plugin side of GRPCStdio while no host reads it: bounded, and nothing lost.
import test from 'ava';
import { MAX_WAITING_STDIO_BYTES, StdioChannel, StdioForwarder, type StdioPipes } from '../../src/transport/stdio.js';

function recordingPipes(): { pipes: StdioPipes; written: Array<[StdioChannel, number]> } {
  const written: Array<[StdioChannel, number]> = [];
  const pipe = (channel: StdioChannel) => (data: Buffer, done?: (error?: Error | null) => void) => {
    written.push([channel, data.length]);
    done?.();
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

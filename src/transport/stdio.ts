/**
 * go-plugin's stdio forwarding, `plugin.GRPCStdio/StreamStdio` (proto/grpc_stdio.proto, go-plugin >=
 * 1.4): after its handshake line, what a plugin writes to stdout and stderr travels to the host as
 * StdioData messages on one server stream, instead of through the pipes.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { emptyCodec, messageCodec, readBuffer, streamingMethod, type Empty } from './protobuf.js';

export enum StdioChannel {
  INVALID = 0,
  STDOUT = 1,
  STDERR = 2,
}

export interface StdioData {
  channel: StdioChannel;
  data: Buffer;
}

const stdioDataCodec = messageCodec<StdioData>(
  (message, writer) => {
    if (message.channel !== StdioChannel.INVALID) writer.uint32((1 << 3) | 0).int32(message.channel);
    if (message.data.length > 0) writer.uint32((2 << 3) | 2).bytes(message.data);
  },
  () => ({ channel: StdioChannel.INVALID, data: Buffer.alloc(0) }),
  (message, field, reader, wireType) => {
    if (field === 1 && wireType === 0) message.channel = reader.int32();
    else if (field === 2 && wireType === 2) message.data = readBuffer(reader);
    else return false;
    return true;
  },
);

export const stdioService = {
  StreamStdio: streamingMethod('/plugin.GRPCStdio/StreamStdio', emptyCodec, stdioDataCodec, {
    requestStream: false,
    responseStream: true,
  }),
} satisfies grpc.ServiceDefinition;

/**
 * Output kept unsent (no host reads it yet, or the host's stream has not taken it), and how long to wait
 * for a host to ask: past either, output goes to the real pipes, as from a plugin without stdio
 * forwarding (a go-plugin < 1.4 host never asks for it).
 */
export const MAX_WAITING_STDIO_BYTES = 8 * 1024 * 1024;
export const STDIO_WAIT_MS = 5000;
/**
 * Unsent output past which process.stdout/stderr.write() return false, as a Node stream does at its
 * high-water mark: a writer that heeds it (readable.pipe does) waits for 'drain', at the host's pace.
 */
export const STDIO_HIGH_WATER_BYTES = 64 * 1024;
/** Largest StdioData we send; a bigger write is split, so it never meets the message size limit. */
const MAX_CHUNK_BYTES = 64 * 1024;

type Done = (error?: Error | null) => void;
type OutputChannel = StdioChannel.STDOUT | StdioChannel.STDERR;

/**
 * The process's real stdout and stderr, as they were before forwarding replaced them; each returns what
 * the stream's write() did (false: wait for its 'drain'), or nothing for a sink that never pushes back.
 */
export type StdioPipes = Record<OutputChannel, (data: Buffer, done?: Done) => boolean | void>;

export function processPipes(): StdioPipes {
  const stdout = process.stdout.write.bind(process.stdout);
  const stderr = process.stderr.write.bind(process.stderr);
  return {
    [StdioChannel.STDOUT]: (data, done) => stdout(data, done),
    [StdioChannel.STDERR]: (data, done) => stderr(data, done),
  };
}

interface Pending {
  channel: OutputChannel;
  data: Buffer;
  done: Done | undefined;
}

/**
 * The plugin's side. While a host streams stdio, output goes to it, and a writer's callback runs only
 * once its bytes are sent, so a writer that waits for callbacks runs at the host's pace (as go-plugin's
 * blocking pipe makes it); write() returns false past the high-water mark of unsent bytes, and 'drain'
 * (with the channel) comes when they fall back under it, so a writer that heeds write() does too. Until
 * a host asks, output waits (bounded, for a while); after that it goes to the real pipes, whose own
 * write() result is returned, until a host does ask.
 */
export class StdioForwarder extends EventEmitter<{ drain: [OutputChannel] }> {
  private mode: 'waiting' | 'streaming' | 'pipes' = 'waiting';
  private waiting: Pending[] = [];
  /** Output handed to the host's stream and not yet written out by it: what an exit would lose. */
  private readonly inFlight = new Set<Pending>();
  /** Bytes neither sent to a host nor handed to the pipes: waiting for a host, or in its stream's queue. */
  private unsent = 0;
  /** Channels whose write() returned false: each is owed a 'drain'. */
  private readonly pushedBack = new Set<OutputChannel>();
  private timer: NodeJS.Timeout | undefined;
  private reader: grpc.ServerWritableStream<Empty, StdioData> | undefined;

  constructor(
    private readonly pipes: StdioPipes,
    private readonly waitMs = STDIO_WAIT_MS,
  ) {
    super();
    this.wait();
  }

  write(channel: OutputChannel, data: Buffer, done?: Done): boolean {
    if (this.mode === 'pipes') return this.pipes[channel](data, done) !== false;
    if (this.mode === 'streaming' && this.unsent > MAX_WAITING_STDIO_BYTES) {
      // A host that stops reading its stream, while the plugin prints without heeding write() (console.log
      // does not), cannot grow the plugin's memory without bound: the rest goes to the pipes.
      this.pipes[channel](data, done);
    } else if (this.mode === 'streaming') {
      this.unsent += data.length;
      this.send({ channel, data, done });
    } else {
      this.waiting.push({ channel, data, done });
      this.unsent += data.length;
      // A plugin printing with nobody listening cannot grow its memory without bound.
      if (this.unsent > MAX_WAITING_STDIO_BYTES) this.toPipes();
    }
    if (this.unsent < STDIO_HIGH_WATER_BYTES) return true;
    this.pushedBack.add(channel);
    return false;
  }

  implementation(): grpc.UntypedServiceImplementation {
    const streamStdio: grpc.handleServerStreamingCall<Empty, StdioData> = (call) => {
      if (this.reader !== undefined) {
        // Two readers would each get part of the output.
        call.emit('error', { code: grpc.status.ALREADY_EXISTS, details: 'stdio is already being streamed' });
        return;
      }
      this.reader = call;
      this.mode = 'streaming';
      clearTimeout(this.timer);
      for (const pending of this.waiting.splice(0)) this.send(pending);
      const gone = (): void => {
        if (this.reader !== call) return;
        this.reader = undefined;
        // What its stream still held will never be sent: writers waiting on it go on, and none of it is kept
        // (a host that keeps reattaching cannot have the plugin hold every stream's last unsent bytes).
        this.inFlight.clear();
        this.handedOn(this.unsent);
        // A host that reattaches will ask again; until then, output waits as at the start.
        if (this.mode === 'streaming') this.wait();
      };
      call.on('cancelled', gone);
      call.on('close', gone);
    };
    return { StreamStdio: streamStdio };
  }

  /**
   * Writes to the real pipes what no host has taken yet, for an exiting process (the pipes are synchronous
   * on Linux): `console.error(why); process.exit(1)` is how plugins say why they give up, and the line
   * died queued in the stream with the process. A line already on its way may reach the host twice.
   */
  spill(): void {
    for (const { channel, data } of [...this.waiting.splice(0), ...this.inFlight]) this.pipes[channel](data);
    this.inFlight.clear();
  }

  /** Ends the stream (queued output first), so a graceful stop does not wait on it; later output uses the pipes. */
  end(): void {
    this.reader?.end();
    this.reader = undefined;
    this.toPipes();
  }

  private send(pending: Pending): void {
    const reader = this.reader as grpc.ServerWritableStream<Empty, StdioData>;
    const { channel, data, done } = pending;
    if (data.length > 0) this.inFlight.add(pending);
    for (let offset = 0; offset < data.length; offset += MAX_CHUNK_BYTES) {
      const chunk = data.subarray(offset, offset + MAX_CHUNK_BYTES);
      const last = offset + MAX_CHUNK_BYTES >= data.length;
      reader.write({ channel, data: chunk }, (error?: Error | null) => {
        // A stream already gone was uncounted whole when it went.
        if (this.reader === reader) this.handedOn(chunk.length);
        if (last) {
          this.inFlight.delete(pending);
          done?.(error);
        }
      });
    }
    if (data.length === 0) done?.();
  }

  /** `bytes` of the unsent output were sent or handed to the pipes; writers told to wait may go on. */
  private handedOn(bytes: number): void {
    this.unsent -= bytes;
    if (this.unsent >= STDIO_HIGH_WATER_BYTES || this.pushedBack.size === 0) return;
    const channels = [...this.pushedBack];
    this.pushedBack.clear();
    // Never from inside a write() (toPipes runs in one): Node's streams emit 'drain' on a later tick too.
    process.nextTick(() => channels.forEach((channel) => this.emit('drain', channel)));
  }

  private wait(): void {
    this.mode = 'waiting';
    this.timer = setTimeout(() => this.toPipes(), this.waitMs);
    this.timer.unref();
  }

  private toPipes(): void {
    clearTimeout(this.timer);
    this.mode = 'pipes';
    for (const { channel, data, done } of this.waiting.splice(0)) this.pipes[channel](data, done);
    this.handedOn(this.unsent);
  }
}

/**
 * Sends everything the process writes through process.stdout and process.stderr to `forwarder`, as
 * go-plugin swaps os.Stdout and os.Stderr for pipes after its handshake line. write() keeps its
 * meaning: false asks the writer to wait for 'drain' on that stream (from the forwarder, or from the
 * real stream once output goes to the pipes). What no host has taken when the process exits goes to
 * the real pipes.
 */
export function redirectProcessOutput(forwarder: StdioForwarder): void {
  const streams: Record<OutputChannel, NodeJS.WriteStream> = {
    [StdioChannel.STDOUT]: process.stdout,
    [StdioChannel.STDERR]: process.stderr,
  };
  for (const channel of [StdioChannel.STDOUT, StdioChannel.STDERR] as const) {
    const write = (chunk: string | Uint8Array, encodingOrDone?: BufferEncoding | Done, done?: Done): boolean => {
      const encoding = typeof encodingOrDone === 'string' ? encodingOrDone : undefined;
      const callback = typeof encodingOrDone === 'function' ? encodingOrDone : done;
      return forwarder.write(channel, typeof chunk === 'string' ? Buffer.from(chunk, encoding) : Buffer.from(chunk), callback);
    };
    streams[channel].write = write as NodeJS.WriteStream['write'];
  }
  forwarder.on('drain', (channel) => streams[channel].emit('drain'));
  // An exit would drop what the stream still holds: the process's last words go out on the real pipes.
  process.once('exit', () => forwarder.spill());
}

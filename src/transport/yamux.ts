/**
 * yamux (github.com/hashicorp/yamux), the stream multiplexer go-plugin >= 1.6 runs over a plugin's one
 * socket when PLUGIN_MULTIPLEX_GRPC is set: the main gRPC connection and every brokered one are yamux
 * streams, each with its own TLS session inside.
 *
 * Frames are a 12-byte header (version 0, type, flags, stream id, length) and, for data, `length`
 * bytes. Each stream has a 256 KiB receive window the peer may not exceed; window updates give credit
 * back as data is consumed. The client opens odd stream ids, the server even ones.
 *
 * The peer is the other side of a plugin connection, so everything it sends is bounded: a frame
 * beyond the window, a duplicate or misnumbered stream, or an unknown version or type ends the
 * session with a protocol error instead of growing our memory. What we write back is bounded too:
 * stream data waits while the connection's unsent buffer is over WRITE_BUFFER_CAP_BYTES, pongs are
 * coalesced, replies the peer provokes without reading them count toward MAX_UNANSWERED_REPLIES, and
 * we stop reading the peer while the buffer is over READ_PAUSE_BYTES.
 */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';

const VERSION = 0;
const HEADER_BYTES = 12;
enum FrameType {
  Data = 0,
  WindowUpdate = 1,
  Ping = 2,
  GoAway = 3,
}
const SYN = 1;
const ACK = 2;
const FIN = 4;
const RST = 8;
const GO_AWAY_NORMAL = 0;
const GO_AWAY_PROTOCOL_ERROR = 1;

/** yamux's initial (and, with go-plugin's configuration, maximum) stream window. */
export const STREAM_WINDOW_BYTES = 256 * 1024;
/** Largest data frame we send, so that one busy stream does not hold up the others for long. */
const MAX_FRAME_PAYLOAD_BYTES = 64 * 1024;
/** Streams the peer may hold open at once; yamux's accept backlog is 256. */
export const MAX_PEER_STREAMS = 1024;
/** Unsent bytes on the connection above which stream data waits for it to drain (and pongs are coalesced). */
export const WRITE_BUFFER_CAP_BYTES = 256 * 1024;
/**
 * Unsent bytes above which we stop reading the peer until it reads ours. Stream data stops at the cap
 * (plus one frame), so only small replies the peer does not read can bring the buffer here.
 */
export const READ_PAUSE_BYTES = 2 * WRITE_BUFFER_CAP_BYTES;
/** Pings and SYNs a peer may send while our replies sit unread; one more is a protocol error. */
const MAX_UNANSWERED_REPLIES = 64;

function header(type: FrameType, flags: number, streamId: number, length: number): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES);
  frame.writeUInt8(VERSION, 0);
  frame.writeUInt8(type, 1);
  frame.writeUInt16BE(flags, 2);
  frame.writeUInt32BE(streamId, 4);
  frame.writeUInt32BE(length, 8);
  return frame;
}

class ProtocolError extends Error {}

/** One yamux stream: a Duplex whose writes respect the peer's window and whose reads give credit back. */
export class YamuxStream extends Duplex {
  private sendWindow = STREAM_WINDOW_BYTES;
  private recvWindow = STREAM_WINDOW_BYTES;
  private localClosed = false;
  private remoteClosed = false;
  private peerReset = false;
  private blockedWrite: { data: Buffer; callback: (error?: Error | null) => void } | undefined;

  constructor(
    readonly id: number,
    private readonly session: YamuxSession,
  ) {
    super({ allowHalfOpen: true });
    // Resets come from the peer, whenever it likes: they reach whoever listens, and a stream nobody
    // listens to must not crash the process with an unhandled 'error'.
    this.on('error', () => {});
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeData(chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.localClosed = true;
    this.session.sendFrame(header(FrameType.WindowUpdate, FIN, this.id, 0));
    this.finishIfClosed();
    callback();
  }

  override _read(): void {
    this.creditPeer();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A stream dropped before both sides finished tells the peer so, instead of leaving it waiting.
    if (!this.peerReset && !(this.localClosed && this.remoteClosed)) {
      this.session.sendFrame(header(FrameType.WindowUpdate, RST, this.id, 0));
    }
    this.blockedWrite?.callback(error ?? new Error('yamux stream destroyed'));
    this.blockedWrite = undefined;
    this.session.forget(this.id);
    callback(error);
  }

  /** Sends the first frame of an opened stream (SYN), or of an accepted one (ACK). */
  announce(flags: typeof SYN | typeof ACK): void {
    this.session.sendFrame(header(FrameType.WindowUpdate, flags, this.id, 0));
  }

  receiveData(payload: Buffer): void {
    if (payload.length > this.recvWindow) throw new ProtocolError(`stream ${this.id} exceeded its receive window`);
    this.recvWindow -= payload.length;
    if (payload.length > 0 && !this.remoteClosed) this.push(payload);
  }

  receiveWindowUpdate(delta: number): void {
    this.sendWindow += delta;
    this.retryBlockedWrite();
  }

  /** @internal for YamuxSession: the window grew or the connection drained. */
  retryBlockedWrite(): void {
    const blocked = this.blockedWrite;
    if (blocked === undefined || this.sendWindow <= 0) return;
    if (this.session.congested) {
      this.session.waitForDrain(this);
      return;
    }
    this.blockedWrite = undefined;
    this.writeData(blocked.data, blocked.callback);
  }

  receiveFlags(flags: number): void {
    if (flags & RST) {
      this.peerReset = true;
      this.destroy(Object.assign(new Error('yamux stream reset by the peer'), { code: 'ECONNRESET' }));
      return;
    }
    if (flags & FIN && !this.remoteClosed) {
      this.remoteClosed = true;
      this.push(null);
      this.finishIfClosed();
    }
  }

  private writeData(data: Buffer, callback: (error?: Error | null) => void): void {
    let offset = 0;
    // Our writers wait for the connection too: a peer that grants windows but never reads would
    // otherwise have every byte they write queued in memory.
    while (offset < data.length && this.sendWindow > 0 && !this.session.congested) {
      const size = Math.min(data.length - offset, this.sendWindow, MAX_FRAME_PAYLOAD_BYTES);
      this.session.sendFrame(header(FrameType.Data, 0, this.id, size), data.subarray(offset, offset + size));
      this.sendWindow -= size;
      offset += size;
    }
    if (offset < data.length) {
      this.blockedWrite = { data: data.subarray(offset), callback };
      if (this.session.congested) this.session.waitForDrain(this);
    } else {
      callback();
    }
  }

  /**
   * Gives the peer back the window it has used, in steps of at least half a window, as yamux does.
   * Node calls _read only when what stays buffered after the current read is under the high-water mark,
   * but before that read takes its bytes: counting them as still buffered withheld all credit from a
   * reader that took a whole window at once, and the stream stalled for good. So the buffered bytes are
   * not subtracted: a peer can still make us hold no more than one window plus the high-water mark.
   */
  private creditPeer(): void {
    const delta = STREAM_WINDOW_BYTES - this.recvWindow;
    if (delta < STREAM_WINDOW_BYTES / 2 || this.remoteClosed) return;
    this.recvWindow += delta;
    this.session.sendFrame(header(FrameType.WindowUpdate, 0, this.id, delta));
  }

  private finishIfClosed(): void {
    if (this.localClosed && this.remoteClosed) this.session.forget(this.id);
  }
}

/**
 * A yamux session over one connection. Emits 'stream' for each stream the peer opens, and 'close'
 * (with the error, if any) once the connection is gone; every stream is then destroyed.
 */
export class YamuxSession extends EventEmitter<{ stream: [YamuxStream]; close: [Error | undefined] }> {
  private readonly streams = new Map<number, YamuxStream>();
  private nextId: number;
  private readonly peerParity: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private pendingHeader: Buffer | undefined;
  private remoteGoAway = false;
  private closed = false;
  /** Streams whose writes wait for the connection to drain. */
  private readonly waitingForDrain = new Set<YamuxStream>();
  /** The value of the latest ping while the connection is congested: one pong answers them all. */
  private pendingPong: number | undefined;
  /** Pings and SYNs received since the connection was last drained, while it was congested. */
  private unansweredReplies = 0;
  private readingPaused = false;
  /**
   * Whether a stream the peer opens now is wanted; one that is not gets a single RST and no stream.
   * By default, a stream nobody listens for is not wanted.
   */
  acceptStreams: () => boolean = () => this.listenerCount('stream') > 0;

  constructor(
    private readonly connection: Duplex,
    role: 'client' | 'server',
  ) {
    super();
    this.nextId = role === 'client' ? 1 : 2;
    this.peerParity = role === 'client' ? 0 : 1;
    connection.on('data', (chunk: Buffer) => this.receive(chunk));
    connection.on('drain', () => this.drained());
    connection.on('error', (error: Error) => this.shutDown(error));
    connection.on('close', () => this.shutDown(undefined));
    connection.on('end', () => this.shutDown(undefined));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Opens a stream to the peer. */
  open(): YamuxStream {
    if (this.closed) throw new Error('the yamux session is closed');
    if (this.remoteGoAway) throw new Error('the peer accepts no new yamux streams');
    const id = this.nextId;
    if (id > 0xffff_ffff) throw new Error('yamux stream ids are exhausted');
    this.nextId += 2;
    const stream = new YamuxStream(id, this);
    this.streams.set(id, stream);
    stream.announce(SYN);
    return stream;
  }

  /** Says goodbye (a normal GoAway) and closes the connection. */
  close(): void {
    if (this.closed) return;
    this.sendFrame(header(FrameType.GoAway, 0, 0, GO_AWAY_NORMAL));
    this.connection.end();
    this.shutDown(undefined);
  }

  /** @internal for YamuxStream */
  sendFrame(frameHeader: Buffer, payload?: Buffer): void {
    if (this.closed || this.connection.destroyed) return;
    this.connection.write(payload === undefined ? frameHeader : Buffer.concat([frameHeader, payload]));
  }

  /** @internal for YamuxStream */
  forget(id: number): void {
    const stream = this.streams.get(id);
    if (stream !== undefined) this.waitingForDrain.delete(stream);
    this.streams.delete(id);
  }

  /** True while the connection holds more unsent bytes than WRITE_BUFFER_CAP_BYTES. */
  get congested(): boolean {
    return this.connection.writableLength >= WRITE_BUFFER_CAP_BYTES;
  }

  /** @internal for YamuxStream */
  waitForDrain(stream: YamuxStream): void {
    this.waitingForDrain.add(stream);
  }

  private drained(): void {
    if (this.closed) return;
    this.unansweredReplies = 0;
    if (this.pendingPong !== undefined) {
      this.sendFrame(header(FrameType.Ping, ACK, 0, this.pendingPong));
      this.pendingPong = undefined;
    }
    for (const stream of [...this.waitingForDrain]) {
      this.waitingForDrain.delete(stream);
      stream.retryBlockedWrite();
    }
    if (this.readingPaused) {
      this.readingPaused = false;
      this.connection.resume();
      this.receive(undefined);
    }
  }

  /**
   * Counts a reply the peer provoked while it leaves ours unread.
   * Attack: a peer flooding pings or SYNs without reading, to grow our write buffer without bound.
   */
  private countUnanswered(what: string): void {
    if (!this.congested) return;
    this.unansweredReplies += 1;
    if (this.unansweredReplies > MAX_UNANSWERED_REPLIES) {
      throw new ProtocolError(`the peer sent more than ${MAX_UNANSWERED_REPLIES} ${what} without reading our replies`);
    }
  }

  private receive(chunk: Buffer | undefined): void {
    if (chunk !== undefined) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    try {
      for (;;) {
        // Attack: a peer that writes without reading, to fill our write buffer with replies.
        if (this.connection.writableLength >= READ_PAUSE_BYTES) {
          if (!this.readingPaused) {
            this.readingPaused = true;
            this.connection.pause();
          }
          return;
        }
        if (this.pendingHeader === undefined) {
          if (this.buffered < HEADER_BYTES) return;
          this.pendingHeader = this.take(HEADER_BYTES);
        }
        const frame = this.pendingHeader;
        const type = frame.readUInt8(1);
        const length = frame.readUInt32BE(8);
        if (frame.readUInt8(0) !== VERSION) throw new ProtocolError(`unknown yamux version ${frame.readUInt8(0)}`);
        if (type === FrameType.Data) {
          // The window bounds what we buffer for one frame: a peer announcing 4 GiB is refused here.
          if (length > STREAM_WINDOW_BYTES) throw new ProtocolError(`data frame of ${length} bytes exceeds the window`);
          if (this.buffered < length) return;
          this.pendingHeader = undefined;
          this.handleStreamFrame(frame, this.take(length));
        } else {
          this.pendingHeader = undefined;
          this.handleControlFrame(type, frame);
        }
      }
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.sendFrame(header(FrameType.GoAway, 0, 0, GO_AWAY_PROTOCOL_ERROR));
      this.connection.end();
      this.shutDown(error);
    }
  }

  private take(size: number): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const taken = all.subarray(0, size);
    const rest = all.subarray(size);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return taken;
  }

  private handleControlFrame(type: number, frame: Buffer): void {
    const flags = frame.readUInt16BE(2);
    const value = frame.readUInt32BE(8);
    switch (type) {
      case FrameType.WindowUpdate:
        this.handleStreamFrame(frame, undefined);
        return;
      case FrameType.Ping:
        // A ping is answered with the same opaque value; an answer to ours (we send none) is ignored.
        if (flags & SYN) this.answerPing(value);
        return;
      case FrameType.GoAway:
        if (value !== GO_AWAY_NORMAL) throw new ProtocolError(`the peer ended the yamux session with error ${value}`);
        this.remoteGoAway = true;
        return;
      default:
        throw new ProtocolError(`unknown yamux frame type ${type}`);
    }
  }

  private answerPing(value: number): void {
    if (!this.congested) {
      this.sendFrame(header(FrameType.Ping, ACK, 0, value));
      return;
    }
    this.countUnanswered('pings');
    // yamux pings one at a time and waits for its own value: only a flood has several waiting, and
    // answering the latest keeps what we queue for it at one frame.
    this.pendingPong = value;
  }

  private handleStreamFrame(frame: Buffer, payload: Buffer | undefined): void {
    const flags = frame.readUInt16BE(2);
    const id = frame.readUInt32BE(4);
    let stream = this.streams.get(id);
    if (flags & SYN) {
      if (stream !== undefined) throw new ProtocolError(`the peer opened stream ${id} twice`);
      // Stream ids of our own parity are ours to open: one from the peer could collide with ours.
      if (id === 0 || id % 2 !== this.peerParity) throw new ProtocolError(`the peer opened stream ${id}, which is not its to open`);
      this.countUnanswered('new streams');
      if (this.streams.size >= MAX_PEER_STREAMS || !this.acceptStreams()) {
        this.sendFrame(header(FrameType.WindowUpdate, RST, id, 0));
        return;
      }
      stream = new YamuxStream(id, this);
      this.streams.set(id, stream);
      stream.announce(ACK);
      this.emit('stream', stream);
    }
    // Frames for a stream we already closed are dropped, as yamux does.
    if (stream === undefined) return;
    if (payload !== undefined) stream.receiveData(payload);
    else stream.receiveWindowUpdate(frame.readUInt32BE(8));
    stream.receiveFlags(flags);
  }

  private shutDown(error: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    for (const stream of [...this.streams.values()]) {
      stream.destroy(Object.assign(new Error('the yamux session closed'), { code: 'ECONNRESET' }));
    }
    this.streams.clear();
    this.waitingForDrain.clear();
    this.pendingPong = undefined;
    this.connection.destroy();
    this.emit('close', error);
  }
}

import * as http2 from 'node:http2';
import { Duplex } from 'node:stream';
import {
  bodyMessages,
  cancelled,
  deadlineExceeded,
  GrpcStatus,
  GrpcStatusError,
  MAX_TIMER_MS,
  readStatus,
  responseHeadersError,
  statusError,
  streamError,
  type RequestOptions,
} from './grpc-call-protocol.js';
import { frameMessage, MessageDecoder } from './grpc-frames.js';

export interface StreamingCallOptions<Req, Res> extends RequestOptions {
  serialize: (request: Req) => Uint8Array;
  /** A response that does not decode fails the call (INTERNAL), as grpc-js does. */
  deserialize: (message: Buffer) => Res;
}

/** A stream the client has opened, with its request headers sent, and the time left before its deadline. */
export interface OpenedStream {
  stream: http2.ClientHttp2Stream;
  timeoutMs: number | undefined;
}

const { NGHTTP2_CANCEL } = http2.constants;

/**
 * One streaming call of the lean client, as an object-mode Duplex: requests written, responses read.
 * Shaped like grpc-js's client streams where the host uses them ('data', 'end', 'error' with a `code`
 * and `details`, `cancel()`), so the broker, stdio and server streams read either.
 *
 * A reader that stops reading pauses the HTTP/2 stream: node:http2 then grants the peer no more window
 * for it, so a plugin that keeps writing is held to what the readable buffer holds (16 messages) and one
 * flow-control window: it cannot grow the host's memory by streaming faster than the host reads.
 */
export class StreamingCall<Req, Res> extends Duplex {
  private stream: http2.ClientHttp2Stream | undefined;
  private session: http2.Http2Session | undefined;
  private readonly decoder: MessageDecoder;
  private timer: NodeJS.Timeout | undefined;
  /** While the client is still connecting (and proving the plugin's certificate): requests wait for it. */
  private opening: Promise<void> | undefined;
  private headers: http2.IncomingHttpHeaders | undefined;
  private trailers: http2.IncomingHttpHeaders | undefined;
  private status: { code: number; details: string } | undefined;
  private failure: GrpcStatusError | undefined;
  private finished = false;

  constructor(
    opened: OpenedStream | GrpcStatusError | Promise<OpenedStream>,
    private readonly options: StreamingCallOptions<Req, Res>,
    maxReceiveMessageBytes: number,
    private readonly checkSendSize: (length: number) => void,
  ) {
    super({ objectMode: true });
    this.decoder = new MessageDecoder(maxReceiveMessageBytes);
    if (opened instanceof Promise) {
      this.opening = opened.then(
        (stream) => this.attach(stream),
        (error: unknown) => this.attach(error instanceof GrpcStatusError ? error : new GrpcStatusError(GrpcStatus.UNAVAILABLE, String(error))),
      );
      return;
    }
    this.attach(opened);
  }

  private attach(opened: OpenedStream | GrpcStatusError): void {
    this.opening = undefined;
    if (opened instanceof GrpcStatusError) {
      if (this.finished) return;
      // Reported as the call's 'error' on the next tick, when the caller listens.
      this.finished = true;
      this.destroy(opened);
      return;
    }
    const { stream, timeoutMs } = opened;
    // Cancelled while the client was connecting: the stream just opened goes too.
    if (this.finished) return void stream.close(NGHTTP2_CANCEL);
    this.stream = stream;
    this.session = stream.session;
    if (timeoutMs !== undefined && timeoutMs <= MAX_TIMER_MS) this.timer = setTimeout(() => this.fail(deadlineExceeded()), timeoutMs);
    stream.on('response', (headers: http2.IncomingHttpHeaders) => this.response(headers));
    stream.on('data', (chunk: Buffer) => this.data(chunk));
    stream.on('trailers', (trailers: http2.IncomingHttpHeaders) => this.trailersReceived(trailers));
    stream.on('error', (error: Error) => (this.failure ??= streamError(error, stream.rstCode)));
    stream.on('close', () => this.finish());
  }

  /** Ends the call now: the peer's stream is reset, messages not yet read are dropped, and the caller sees CANCELLED. */
  cancel(): void {
    if (this.finished) return;
    this.finished = true;
    this.destroy(cancelled());
  }

  override _read(): void {
    if (this.stream?.isPaused()) this.stream.resume();
  }

  override _write(request: Req, encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.opening) return void this.opening.then(() => this._write(request, encoding, done));
    const stream = this.stream;
    if (stream === undefined || this.finished) return done();
    let message: Uint8Array;
    try {
      message = this.options.serialize(request);
      this.checkSendSize(message.length);
    } catch (error) {
      this.fail(error instanceof GrpcStatusError ? error : new GrpcStatusError(GrpcStatus.INTERNAL, `cannot encode the request: ${String(error)}`));
      return done();
    }
    // A failed write ends the stream, which settles the call with its reason: the write itself reports nothing.
    stream.write(frameMessage(message), () => done());
  }

  override _final(done: (error?: Error | null) => void): void {
    if (this.opening) return void this.opening.then(() => this._final(done));
    if (this.stream !== undefined && !this.stream.closed) this.stream.end();
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    // A reader that gives up (a `break` out of `for await`) must stop the peer too.
    if (this.stream !== undefined && !this.stream.closed) this.stream.close(NGHTTP2_CANCEL);
    if (this.timer) clearTimeout(this.timer);
    this.finished = true;
    done(error);
  }

  private response(headers: http2.IncomingHttpHeaders): void {
    const refused = responseHeadersError(headers);
    if (refused) return this.fail(refused);
    this.headers = headers;
    // Trailers-only: the status is in the headers and no body follows.
    if (headers['grpc-status'] !== undefined) this.status = readStatus(headers);
  }

  private data(chunk: Buffer): void {
    if (this.finished) return;
    const messages = bodyMessages(this.decoder, this.status !== undefined, chunk);
    if (messages instanceof GrpcStatusError) return this.fail(messages);
    let more = true;
    for (const message of messages) {
      let response: Res;
      try {
        response = this.options.deserialize(message);
      } catch (error) {
        return this.fail(new GrpcStatusError(GrpcStatus.INTERNAL, `cannot decode a response message: ${String(error)}`));
      }
      more = this.push(response);
    }
    if (!more) this.stream!.pause();
  }

  /**
   * Kept, and judged at the stream's close: node:http2 reports trailers as soon as they arrive, while
   * data a slow reader has not taken yet may still be on its way to us.
   */
  private trailersReceived(trailers: http2.IncomingHttpHeaders): void {
    this.trailers = trailers;
  }

  private fail(error: GrpcStatusError): void {
    this.failure ??= error;
    if (this.stream !== undefined && !this.stream.closed) this.stream.close(NGHTTP2_CANCEL);
    this.finish();
  }

  /** At the stream's close (all its data delivered by then) or the first failure: the call's outcome. */
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.trailers !== undefined && this.failure === undefined) {
      this.status = readStatus(this.trailers);
      if (!this.decoder.idle) this.failure = new GrpcStatusError(GrpcStatus.INTERNAL, 'the response ended inside a message');
    }
    const failure = this.failure ?? statusError(this.status, this.session, this.stream?.rstCode, this.headers, this.trailers);
    if (failure === undefined) return void this.push(null);
    if (this.readableLength === 0) return void this.destroy(failure);
    // As grpc-js does: the messages the plugin sent before the failure are still read (a stdio stream's
    // last lines, a server stream's items), then the readable side ends; the error is reported at once.
    this.push(null);
    this.emit('error', failure);
  }
}

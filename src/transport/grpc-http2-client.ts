import * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import {
  bodyMessages,
  cancelled,
  GrpcStatus,
  GrpcStatusError,
  incomingMetadata,
  MAX_TIMER_MS,
  MessageSizeError,
  readStatus,
  requestHeaders,
  responseHeadersError,
  statusError,
  streamError,
  deadlineExceeded,
  type IncomingMetadata,
  type RequestOptions,
} from './grpc-call-protocol.js';
import { frameMessage, MessageDecoder, messagePrefix } from './grpc-frames.js';
import { StreamingCall, type OpenedStream, type StreamingCallOptions } from './grpc-http2-stream.js';
import { HANDSHAKE_TIMEOUT_MS } from '../tls/pinning.js';

export { GrpcStatus, GrpcStatusError, MessageSizeError, percentDecode, timeoutHeader, type IncomingMetadata, type OutgoingMetadata } from './grpc-call-protocol.js';

/**
 * A lean gRPC client straight on node:http2, over one HTTP/2 session that it opens on first use and
 * opens again after the peer closed it. It carries all of a plugin's calls on one connection: the
 * caller's unary calls (measured on this machine against the Go plugin, about half of grpc-js's host
 * CPU per call; docs/benchmarks.md), and the streams a host keeps open (go-plugin's broker and stdio,
 * server streams).
 *
 * It speaks the gRPC-over-HTTP/2 protocol as grpc-go and grpc-js serve it (grpc-call-protocol.ts): a
 * receive size limit checked before allocating, and no compression (a compressed response is refused).
 */

export interface GrpcHttp2ClientOptions {
  /** Opens the transport (a pinned TLS socket, or a plain one for plaintext plugins asked for by name). */
  connect: () => Duplex;
  /**
   * Settles once a new connection may carry HTTP/2 (the pinned TLS check, tls/pinning.ts), rejecting with
   * why not: the client writes and reads no byte of HTTP/2 on it before. Without it HTTP/2 starts at once.
   */
  ready?: (connection: Duplex) => Promise<void>;
  /**
   * How long `ready` may take before the connection is given up (default: HANDSHAKE_TIMEOUT_MS, as a pinned
   * server cuts a handshake): the calls waiting for it fail UNAVAILABLE and the next call connects anew.
   */
  proofTimeoutMs?: number;
  /** `:authority`; both sides' certificates name `localhost`. */
  authority: string;
  maxReceiveMessageBytes: number;
  maxSendMessageBytes: number;
  /** HTTP/2 flow-control window for the session and each stream. */
  windowBytes: number;
}

export interface UnaryCallOptions extends RequestOptions {
  signal?: AbortSignal;
}

export interface UnaryResponse {
  message: Buffer;
  metadata: IncomingMetadata;
}

const { NGHTTP2_CANCEL } = http2.constants;

export class GrpcHttp2Client {
  private session: http2.ClientHttp2Session | undefined;
  /** The next session while its connection is being made and proved; calls made meanwhile wait for it. */
  private opening: Promise<http2.ClientHttp2Session> | undefined;
  /**
   * Calls with a deadline or a signal waiting for `opening`: each leaves when it gives up, so a connection
   * slow to be proved holds nothing of the calls that are gone.
   */
  private readonly waiting = new Set<SessionWaiter>();
  private closed = false;
  /** Every socket this client opened and that is still open: see destroy(). */
  private readonly sockets = new Set<Duplex>();

  constructor(private readonly options: GrpcHttp2ClientOptions) {}

  /** `request` is written without a copy when large: it must not change until the call's stream has closed. */
  call(path: string, request: Uint8Array, callOptions: UnaryCallOptions = {}): Promise<UnaryResponse> {
    if (callOptions.signal?.aborted) return Promise.reject(cancelled());
    let session: http2.ClientHttp2Session | Promise<http2.ClientHttp2Session>;
    try {
      this.checkSendSize(request.length);
      session = this.openSession();
    } catch (error) {
      return Promise.reject(error);
    }
    return session instanceof Promise
      ? this.waitFor(session, callOptions).then((ready) => this.callOn(ready, path, request, callOptions))
      : this.callOn(session, path, request, callOptions);
  }

  private callOn(session: http2.ClientHttp2Session, path: string, request: Uint8Array, callOptions: UnaryCallOptions): Promise<UnaryResponse> {
    return new Promise<UnaryResponse>((resolve, reject) => {
      let stream: CallStream;
      let timeoutMs: number | undefined;
      try {
        ({ stream, timeoutMs } = this.request(session, path, callOptions));
      } catch (error) {
        return reject(error);
      }
      const call = new UnaryCall(stream, this.options.maxReceiveMessageBytes, resolve, reject, callOptions.signal);
      stream[CALL] = call;
      if (timeoutMs !== undefined && timeoutMs <= MAX_TIMER_MS) call.timer = setTimeout(onDeadline, timeoutMs, call);
      // Module-level listeners that find their call on the stream: no closures to allocate per call.
      stream.on('response', onResponse);
      stream.on('data', onData);
      stream.on('trailers', onTrailers);
      stream.on('error', onError);
      stream.on('end', onEnd);
      stream.on('close', onClose);
      writeMessage(stream, request);
    });
  }

  /**
   * A call whose requests and responses are streams (server, client or bidi streaming alike): an
   * object-mode Duplex of request and response messages. A failure, a deadline or `cancel()` reaches
   * it as an 'error' carrying a GrpcStatusError; a call that ends with status OK ends its readable side.
   */
  stream<Req, Res>(path: string, options: StreamingCallOptions<Req, Res>): StreamingCall<Req, Res> {
    let opened: OpenedStream | GrpcStatusError | Promise<OpenedStream>;
    try {
      const session = this.openSession();
      opened = session instanceof Promise ? this.waitFor(session, options).then((ready) => this.request(ready, path, options)) : this.request(session, path, options);
    } catch (error) {
      opened = error as GrpcStatusError;
    }
    return new StreamingCall(opened, options, this.options.maxReceiveMessageBytes, (length) => this.checkSendSize(length));
  }

  /** Opens the session now rather than at the first call. */
  connect(): void {
    if (this.closed) return;
    const session = this.openSession();
    // A failure here is the next call's to report.
    if (session instanceof Promise) session.catch(() => {});
  }

  /**
   * Resolves once the current session (if any) has closed, or after `maxWaitMs`: a peer that has exited
   * gets that long for what it sent last (the rest of its responses, the end of the connection) to be
   * read. Then the sockets are destroyed: a graceful close could wait for good on a write to a dead peer
   * that never completes (SECURITY.md H8).
   */
  async closeAfterPeerGone(maxWaitMs: number): Promise<void> {
    const session = this.session;
    if (session !== undefined && !session.closed && !session.destroyed && maxWaitMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, maxWaitMs);
        session.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.destroy();
  }

  /**
   * Stops at once: every call in flight fails and the sockets are destroyed (the peer is gone). The
   * sockets are destroyed here, not left to the session: Node.js 20 keeps a TLS write to a peer that
   * died "in progress" for good, and the session's own destroy waits for it, so its socket would leak
   * (SECURITY.md H8).
   */
  destroy(): void {
    this.closed = true;
    this.session?.destroy();
    this.session = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  private checkSendSize(length: number): void {
    if (length > this.options.maxSendMessageBytes) {
      throw new MessageSizeError('sent', length, this.options.maxSendMessageBytes);
    }
  }

  /** A new stream on the session, with the request headers sent. Throws GrpcStatusError. */
  private request(session: http2.ClientHttp2Session, path: string, options: RequestOptions): OpenedStream {
    if (this.closed) throw new GrpcStatusError(GrpcStatus.UNAVAILABLE, 'the client is closed');
    const { headers, timeoutMs } = requestHeaders(path, this.options.authority, options);
    try {
      return { stream: session.request(headers), timeoutMs };
    } catch (error) {
      if (this.session === session) this.dropSession();
      throw new GrpcStatusError(GrpcStatus.UNAVAILABLE, `cannot start the call: ${(error as Error).message}`);
    }
  }

  /** The open session, or the one on its way: a call made meanwhile waits for it, bounded by its own deadline and signal. */
  private openSession(): http2.ClientHttp2Session | Promise<http2.ClientHttp2Session> {
    if (this.closed) throw new GrpcStatusError(GrpcStatus.UNAVAILABLE, 'the client is closed');
    const current = this.session;
    if (current && !current.closed && !current.destroyed) return current;
    if (this.opening === undefined) {
      const opening = this.newSession();
      this.opening = opening;
      const done = (): void => {
        if (this.opening === opening) this.opening = undefined;
      };
      opening.then(done, done);
      // One reaction for every call waiting, not one per call: a call that gives up leaves the set.
      opening.then(
        (session) => this.settleWaiting((waiter) => waiter.resolve(session)),
        (error: unknown) => this.settleWaiting((waiter) => waiter.reject(error)),
      );
    }
    return this.opening;
  }

  private settleWaiting(settle: (waiter: SessionWaiter) => void): void {
    const waiters = [...this.waiting];
    this.waiting.clear();
    for (const waiter of waiters) settle(waiter);
  }

  /** A call's wait for the session ends at its deadline or its cancellation, whichever comes first. */
  private waitFor(session: Promise<http2.ClientHttp2Session>, options: UnaryCallOptions): Promise<http2.ClientHttp2Session> {
    const { deadline, signal } = options;
    if (deadline === undefined && signal === undefined) return session;
    return new Promise((resolve, reject) => {
      // Attack: a plugin that stalls its handshake while the host's calls give up one after the other; each
      // kept a reaction on the opening (its signal, timer and promise) for as long as the stall lasted.
      const end = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiting.delete(waiter);
      };
      const waiter: SessionWaiter = {
        resolve: (ready) => (end(), resolve(ready)),
        reject: (error) => (end(), reject(error)),
      };
      const onAbort = (): void => waiter.reject(cancelled());
      const left = deadline === undefined ? undefined : deadline - Date.now();
      const timer = left === undefined || left > MAX_TIMER_MS ? undefined : setTimeout(() => waiter.reject(deadlineExceeded()), Math.max(0, left));
      signal?.addEventListener('abort', onAbort, { once: true });
      // `session` is the opening still under way (openSession forgets it in the same turn it settles), whose
      // one reaction settles every waiter: none is left behind.
      this.waiting.add(waiter);
    });
  }

  /**
   * Connects, waits for `ready` (the pin), and only then starts HTTP/2 on the connection: a peer that is
   * not the plugin never sees a byte of it. Rejects with GrpcStatusError UNAVAILABLE and the reason.
   */
  private async newSession(): Promise<http2.ClientHttp2Session> {
    const connection = this.track(this.options.connect());
    try {
      await this.prove(connection);
    } catch (error) {
      connection.destroy();
      throw new GrpcStatusError(GrpcStatus.UNAVAILABLE, `cannot connect: ${(error as Error).message}`);
    }
    if (this.closed) {
      connection.destroy();
      throw new GrpcStatusError(GrpcStatus.UNAVAILABLE, 'the client is closed');
    }
    const session = http2.connect(`https://${this.options.authority}`, {
      createConnection: () => connection,
      // No server push: a plugin must not open streams toward the host that it never asked for.
      settings: { initialWindowSize: this.options.windowBytes, enablePush: false },
      // Response headers are the peer's input: bound them (grpc-js allows 16 KiB by default too).
      maxHeaderListPairs: 128,
    });
    // node:http2 emits 'connect' even for a session destroyed meanwhile (the plugin killed as it connects),
    // where setLocalWindowSize throws: uncaught, inside node:http2's tick, it would end the host.
    session.once('connect', () => {
      if (!session.destroyed) session.setLocalWindowSize(this.options.windowBytes);
    });
    // After GOAWAY or an error, calls already running finish or fail on their own; new ones reconnect.
    const forget = () => {
      if (this.session === session) this.session = undefined;
    };
    session.on('goaway', forget);
    session.on('close', forget);
    session.on('error', forget);
    // An idle session must not keep the host's event loop alive.
    session.unref();
    this.session = session;
    return session;
  }

  /**
   * `ready`, bounded by proofTimeoutMs. Attack: a plugin that accepts the connection and never finishes its
   * handshake; the opening never settled, so every later call waited on it and none connected again.
   */
  private async prove(connection: Duplex): Promise<void> {
    const { ready, proofTimeoutMs = HANDSHAKE_TIMEOUT_MS } = this.options;
    if (ready === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`the plugin did not finish the connection's handshake within ${proofTimeoutMs} ms`)), proofTimeoutMs);
      // The connection keeps the host running while it is made; this timer alone must not.
      timer.unref();
    });
    try {
      await Promise.race([ready(connection), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private track(socket: Duplex): Duplex {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    return socket;
  }

  private dropSession(): void {
    this.session?.destroy();
    this.session = undefined;
  }
}

interface SessionWaiter {
  resolve: (session: http2.ClientHttp2Session) => void;
  reject: (error: unknown) => void;
}

const CALL = Symbol('unaryCall');
type CallStream = http2.ClientHttp2Stream & { [CALL]?: UnaryCall };

/** Above this size the prefix and the message go out as two writes: no copy of a large message. */
const COPY_LIMIT_BYTES = 16 * 1024;

function writeMessage(stream: http2.ClientHttp2Stream, message: Uint8Array): void {
  if (message.length <= COPY_LIMIT_BYTES) {
    stream.end(frameMessage(message));
    return;
  }
  stream.write(messagePrefix(message.length));
  stream.end(message);
}

/** One call's state, from the request written to the promise settled. */
class UnaryCall {
  timer: NodeJS.Timeout | undefined;
  private readonly decoder: MessageDecoder;
  private message: Buffer | undefined;
  private status: { code: number; details: string } | undefined;
  private failure: GrpcStatusError | undefined;
  private headers: http2.IncomingHttpHeaders | undefined;
  private trailers: http2.IncomingHttpHeaders | undefined;
  private settled = false;
  private readonly onAbort: (() => void) | undefined;
  private readonly session: http2.Http2Session | undefined;

  constructor(
    private readonly stream: CallStream,
    maxReceiveMessageBytes: number,
    private readonly resolve: (response: UnaryResponse) => void,
    private readonly reject: (error: GrpcStatusError) => void,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.decoder = new MessageDecoder(maxReceiveMessageBytes);
    // Kept now: a closed stream no longer names its session (see statusError).
    this.session = stream.session;
    if (signal !== undefined) {
      this.onAbort = () => this.fail(cancelled());
      signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  get hasStatus(): boolean {
    return this.status !== undefined;
  }

  response(headers: http2.IncomingHttpHeaders): void {
    const refused = responseHeadersError(headers);
    if (refused) return this.fail(refused);
    this.headers = headers;
    // Trailers-only: the status is in the headers and no body follows.
    if (headers['grpc-status'] !== undefined) this.status = readStatus(headers);
  }

  data(chunk: Buffer): void {
    const messages = bodyMessages(this.decoder, this.status !== undefined, chunk);
    if (messages instanceof GrpcStatusError) return this.fail(messages);
    for (const received of messages) {
      if (this.message !== undefined) return this.fail(new GrpcStatusError(GrpcStatus.INTERNAL, 'a unary call received more than one response message'));
      this.message = received;
    }
  }

  trailersReceived(trailers: http2.IncomingHttpHeaders): void {
    this.trailers = trailers;
    this.status = readStatus(trailers);
    if (!this.decoder.idle) this.failure ??= new GrpcStatusError(GrpcStatus.INTERNAL, 'the response ended inside a message');
  }

  /** A session failure reaches each stream as an error, then close: the call reports the loss. */
  error(error: Error & { code?: string }): void {
    this.failure ??= streamError(error, this.stream.rstCode);
  }

  /** First failure wins; the stream is cancelled so the peer stops sending. */
  fail(error: GrpcStatusError): void {
    this.failure ??= error;
    if (!this.stream.closed) this.stream.close(NGHTTP2_CANCEL);
    this.finish();
  }

  finish(): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.onAbort) this.signal?.removeEventListener('abort', this.onAbort);
    const failure = this.failure ?? statusError(this.status, this.session, this.stream.rstCode, this.headers, this.trailers);
    if (failure) return this.reject(failure);
    if (this.message === undefined) {
      return this.reject(new GrpcStatusError(GrpcStatus.INTERNAL, 'the response had no message', incomingMetadata(this.headers, this.trailers)));
    }
    this.resolve(new ReceivedResponse(this.message, this.headers, this.trailers));
  }
}

function onResponse(this: CallStream, headers: http2.IncomingHttpHeaders): void {
  this[CALL]!.response(headers);
}
function onData(this: CallStream, chunk: Buffer): void {
  this[CALL]!.data(chunk);
}
function onTrailers(this: CallStream, trailers: http2.IncomingHttpHeaders): void {
  this[CALL]!.trailersReceived(trailers);
}
function onError(this: CallStream, error: Error): void {
  this[CALL]!.error(error);
}
/** The body has been read: with a status in hand the call is settled now, not a few ticks later at close. */
function onEnd(this: CallStream): void {
  const call = this[CALL]!;
  if (call.hasStatus) call.finish();
}
function onClose(this: CallStream): void {
  this[CALL]!.finish();
}
function onDeadline(call: UnaryCall): void {
  call.fail(deadlineExceeded());
}

/** A response whose metadata is decoded only when someone reads it: most callers want the message alone. */
class ReceivedResponse implements UnaryResponse {
  private decoded: IncomingMetadata | undefined;

  constructor(
    readonly message: Buffer,
    private readonly headers: http2.IncomingHttpHeaders | undefined,
    private readonly trailers: http2.IncomingHttpHeaders | undefined,
  ) {}

  get metadata(): IncomingMetadata {
    return (this.decoded ??= incomingMetadata(this.headers, this.trailers));
  }
}

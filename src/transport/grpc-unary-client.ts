import * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { FrameError, frameMessage, MessageDecoder, messagePrefix } from './grpc-frames.js';

/**
 * A lean gRPC client for unary calls, straight on node:http2: one request message, one response
 * message, over one HTTP/2 session that it opens on first use and opens again after the peer closed
 * it. Measured on this machine against the Go plugin, this path costs about half of grpc-js's host
 * CPU per call (docs/benchmarks.md); streaming and the broker stay on grpc-js.
 *
 * It speaks the gRPC-over-HTTP/2 protocol as grpc-go and grpc-js serve it: deadlines sent as
 * `grpc-timeout` and enforced locally by cancelling the stream, status and percent-decoded
 * `grpc-message` from trailers or a trailers-only response, metadata in and out, a receive size limit
 * checked before allocating, and no compression (a compressed response is refused).
 */

/** gRPC status codes used here (the numbers are the protocol's). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
  PERMISSION_DENIED: 7,
} as const;

/** Request metadata: ASCII values, or bytes for keys ending in `-bin`. */
export type OutgoingMetadata = Iterable<[string, string | Buffer]>;
/** Response metadata, headers and trailers together, each key with all its values. */
export type IncomingMetadata = Map<string, (string | Buffer)[]>;

/** A call that ended with a status other than OK; shaped like grpc-js's ServiceError. */
export class GrpcStatusError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
    readonly metadata: IncomingMetadata = new Map(),
  ) {
    super(`${code} ${details}`);
  }
}

export interface UnaryClientOptions {
  /** Opens the transport (a pinned TLS socket, or a plain one for plaintext plugins asked for by name). */
  connect: () => Duplex;
  /** `:authority`; both sides' certificates name `localhost`. */
  authority: string;
  maxReceiveMessageBytes: number;
  maxSendMessageBytes: number;
  /** HTTP/2 flow-control window for the session and each stream. */
  windowBytes: number;
}

export interface UnaryCallOptions {
  /** Absolute deadline (ms since the epoch): sent as `grpc-timeout`, and the stream is cancelled then. */
  deadline?: number;
  signal?: AbortSignal;
  metadata?: OutgoingMetadata;
}

export interface UnaryResponse {
  message: Buffer;
  metadata: IncomingMetadata;
}

const {
  HTTP2_HEADER_CONTENT_TYPE,
  HTTP2_HEADER_STATUS,
  NGHTTP2_CANCEL,
  NGHTTP2_REFUSED_STREAM,
} = http2.constants;

/** Headers that are the protocol's, never user metadata in either direction. */
const RESERVED_HEADER = /^(?::|grpc-(?:status|message|timeout|encoding|accept-encoding)$|content-type$|te$|user-agent$)/;
const METADATA_KEY = /^[0-9a-z_.-]+$/;
const GRPC_CONTENT_TYPE = /^application\/grpc(?:$|[+;])/;

export class UnaryClient {
  private session: http2.ClientHttp2Session | undefined;
  private closed = false;

  constructor(private readonly options: UnaryClientOptions) {}

  /** `request` is written without a copy when large: it must not change until the call's stream has closed. */
  call(path: string, request: Uint8Array, callOptions: UnaryCallOptions = {}): Promise<UnaryResponse> {
    return new Promise<UnaryResponse>((resolve, reject) => {
      if (this.closed) return reject(new GrpcStatusError(GrpcStatus.UNAVAILABLE, 'the client is closed'));
      if (callOptions.signal?.aborted) return reject(cancelled());
      if (request.length > this.options.maxSendMessageBytes) {
        return reject(new GrpcStatusError(GrpcStatus.RESOURCE_EXHAUSTED,
          `sent message larger than max (${request.length} vs. ${this.options.maxSendMessageBytes})`));
      }
      // Literal keys: V8 keeps this a fast object, which node:http2 walks once per call.
      const headers: http2.OutgoingHttpHeaders = {
        ':method': 'POST',
        ':scheme': 'https',
        ':path': path,
        ':authority': this.options.authority,
        'content-type': 'application/grpc',
        te: 'trailers',
      };
      const timeoutMs = callOptions.deadline === undefined ? undefined : callOptions.deadline - Date.now();
      if (timeoutMs !== undefined) {
        if (timeoutMs <= 0) return reject(deadlineExceeded());
        headers['grpc-timeout'] = timeoutHeader(timeoutMs);
      }
      try {
        if (callOptions.metadata) addMetadata(headers, callOptions.metadata);
      } catch (error) {
        return reject(error);
      }

      let stream: CallStream;
      try {
        stream = this.openSession().request(headers);
      } catch (error) {
        this.dropSession();
        return reject(new GrpcStatusError(GrpcStatus.UNAVAILABLE, `cannot start the call: ${(error as Error).message}`));
      }
      const call = new UnaryCall(stream, this.options.maxReceiveMessageBytes, resolve, reject, callOptions.signal);
      stream[CALL] = call;
      // Past what a timer can hold (about 24.8 days) the wait is unbounded here; the peer still has grpc-timeout.
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

  /** Opens the session now rather than at the first call. */
  connect(): void {
    if (!this.closed) this.openSession();
  }

  /** Stops new calls and closes the session once the calls in flight are done. */
  close(): void {
    this.closed = true;
    this.session?.close();
    this.session = undefined;
  }

  /** Stops at once: every call in flight fails and the socket is destroyed (the peer is gone). */
  destroy(): void {
    this.closed = true;
    this.session?.destroy();
    this.session = undefined;
  }

  private openSession(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const session = http2.connect(`https://${this.options.authority}`, {
      createConnection: () => this.options.connect(),
      // No server push: a plugin must not open streams toward the host that it never asked for.
      settings: { initialWindowSize: this.options.windowBytes, enablePush: false },
      // Response headers are the peer's input: bound them (grpc-js allows 16 KiB by default too).
      maxHeaderListPairs: 128,
    });
    session.once('connect', () => session.setLocalWindowSize(this.options.windowBytes));
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

  private dropSession(): void {
    this.session?.destroy();
    this.session = undefined;
  }
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
    // Kept now: a closed stream no longer names its session, and finish() must tell a lost connection
    // (UNAVAILABLE) from a stream that ended without a status on a live one.
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
    const httpStatus = Number(headers[HTTP2_HEADER_STATUS]);
    if (httpStatus !== 200) return this.fail(new GrpcStatusError(httpStatusCode(httpStatus), `HTTP status ${httpStatus}`));
    const contentType = String(headers[HTTP2_HEADER_CONTENT_TYPE] ?? '');
    if (!GRPC_CONTENT_TYPE.test(contentType)) {
      return this.fail(new GrpcStatusError(GrpcStatus.UNKNOWN, `the response is not gRPC (content-type ${JSON.stringify(contentType.slice(0, 64))})`));
    }
    this.headers = headers;
    // Trailers-only: the status is in the headers and no body follows.
    if (headers['grpc-status'] !== undefined) this.status = readStatus(headers);
  }

  data(chunk: Buffer): void {
    if (this.status !== undefined) return this.fail(new GrpcStatusError(GrpcStatus.INTERNAL, 'data after the status'));
    let messages: Buffer[];
    try {
      messages = this.decoder.push(chunk);
    } catch (error) {
      return this.fail(error instanceof FrameError ? new GrpcStatusError(error.grpcCode, error.message) : new GrpcStatusError(GrpcStatus.INTERNAL, String(error)));
    }
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
    this.failure ??= error.code === 'ERR_HTTP2_STREAM_ERROR'
      ? new GrpcStatusError(streamEndCode(this.stream.rstCode), `the peer reset the stream (HTTP/2 code ${this.stream.rstCode})`)
      : new GrpcStatusError(GrpcStatus.UNAVAILABLE, `connection to the plugin failed: ${error.message}`);
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
    if (this.failure) return this.reject(this.failure);
    const status = this.status;
    if (status === undefined) {
      // The connection went first (a plugin that crashed mid-call): UNAVAILABLE, as grpc-js says, so that
      // the caller goes on to ask whether the plugin exited.
      const session = this.session;
      if (session === undefined || session.destroyed || session.closed) {
        return this.reject(new GrpcStatusError(GrpcStatus.UNAVAILABLE, 'the connection to the plugin ended during the call', this.metadata()));
      }
      return this.reject(new GrpcStatusError(streamEndCode(this.stream.rstCode), `the stream ended without a gRPC status (HTTP/2 code ${this.stream.rstCode ?? 'none'})`, this.metadata()));
    }
    if (status.code !== GrpcStatus.OK) return this.reject(new GrpcStatusError(status.code, status.details, this.metadata()));
    if (this.message === undefined) return this.reject(new GrpcStatusError(GrpcStatus.INTERNAL, 'the response had no message', this.metadata()));
    this.resolve(new ReceivedResponse(this.message, this.headers, this.trailers));
  }

  private metadata(): IncomingMetadata {
    return incomingMetadata(this.headers, this.trailers);
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

function incomingMetadata(headers: http2.IncomingHttpHeaders | undefined, trailers: http2.IncomingHttpHeaders | undefined): IncomingMetadata {
  const metadata: IncomingMetadata = new Map();
  if (headers) collectMetadata(metadata, headers);
  if (trailers) collectMetadata(metadata, trailers);
  return metadata;
}

/** The caller's metadata as headers; protocol headers (grpc-timeout, :path, content-type) cannot be overridden through it. */
function addMetadata(headers: http2.OutgoingHttpHeaders, metadata: OutgoingMetadata): void {
  for (const [rawKey, value] of metadata) {
    const key = rawKey.toLowerCase();
    if (!METADATA_KEY.test(key) || RESERVED_HEADER.test(key)) {
      throw new GrpcStatusError(GrpcStatus.INTERNAL, `metadata key ${JSON.stringify(rawKey)} is not allowed`);
    }
    let encoded: string;
    if (key.endsWith('-bin')) {
      encoded = (typeof value === 'string' ? Buffer.from(value) : value).toString('base64');
    } else if (typeof value === 'string' && /^[\x20-\x7e]*$/.test(value)) {
      encoded = value;
    } else {
      throw new GrpcStatusError(GrpcStatus.INTERNAL, `metadata ${key}: a value must be printable ASCII (or use a -bin key)`);
    }
    const existing = headers[key];
    headers[key] = existing === undefined ? encoded : [...(Array.isArray(existing) ? existing : [String(existing)]), encoded];
  }
}

function collectMetadata(into: IncomingMetadata, headers: http2.IncomingHttpHeaders): void {
  for (const [key, value] of Object.entries(headers)) {
    if (value === undefined || RESERVED_HEADER.test(key)) continue;
    const values = Array.isArray(value) ? value : [value];
    const list = into.get(key) ?? [];
    // Binary values are base64 (padded or not, as grpc-go sends them); a comma joins repeated ones.
    for (const item of values) for (const part of key.endsWith('-bin') ? item.split(',') : [item]) list.push(key.endsWith('-bin') ? Buffer.from(part, 'base64') : part);
    into.set(key, list);
  }
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** `grpc-timeout`: at most 8 digits (the spec's limit), in the finest unit that fits: ms, then s, min, h. */
export function timeoutHeader(ms: number): string {
  for (const [unit, factor] of [['m', 1], ['S', 1000], ['M', 60_000], ['H', 3_600_000]] as const) {
    const amount = Math.ceil(ms / factor);
    if (amount < 1e8) return `${amount}${unit}`;
  }
  return '99999999H';
}

function readStatus(headers: http2.IncomingHttpHeaders): { code: number; details: string } {
  const raw = String(headers['grpc-status'] ?? '');
  const code = /^\d{1,2}$/.test(raw) ? Number(raw) : GrpcStatus.UNKNOWN;
  const message = headers['grpc-message'];
  return { code, details: percentDecode(Array.isArray(message) ? message.join(',') : (message ?? '')) };
}

/** `grpc-message` is percent-encoded UTF-8; a malformed escape is kept as written, never an exception. */
export function percentDecode(text: string): string {
  if (!text.includes('%')) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (char === 0x25 && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      for (const byte of Buffer.from(text[i]!)) bytes.push(byte);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The gRPC status for an HTTP status other than 200, as the gRPC spec maps them. */
function httpStatusCode(status: number): number {
  switch (status) {
    case 400: return GrpcStatus.INTERNAL;
    case 401: return GrpcStatus.UNAUTHENTICATED;
    case 403: return GrpcStatus.PERMISSION_DENIED;
    case 404: return GrpcStatus.UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return GrpcStatus.UNAVAILABLE;
    default: return GrpcStatus.UNKNOWN;
  }
}

function streamEndCode(rstCode: number | undefined): number {
  if (rstCode === NGHTTP2_REFUSED_STREAM) return GrpcStatus.UNAVAILABLE;
  if (rstCode === NGHTTP2_CANCEL) return GrpcStatus.CANCELLED;
  return GrpcStatus.INTERNAL;
}

function cancelled(): GrpcStatusError {
  return new GrpcStatusError(GrpcStatus.CANCELLED, 'cancelled by the caller');
}

function deadlineExceeded(): GrpcStatusError {
  return new GrpcStatusError(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded');
}

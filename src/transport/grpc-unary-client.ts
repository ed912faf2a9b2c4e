import * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { FrameError, frameMessage, MessageDecoder } from './grpc-frames.js';

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
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_AUTHORITY,
  HTTP2_HEADER_SCHEME,
  HTTP2_HEADER_CONTENT_TYPE,
  HTTP2_HEADER_TE,
  HTTP2_HEADER_STATUS,
  NGHTTP2_CANCEL,
  NGHTTP2_REFUSED_STREAM,
} = http2.constants;

/** Headers that are the protocol's, never user metadata in either direction. */
const RESERVED_HEADER = /^(?::|grpc-(?:status|message|timeout|encoding|accept-encoding)$|content-type$|te$|user-agent$)/;
const METADATA_KEY = /^[0-9a-z_.-]+$/;

export class UnaryClient {
  private session: http2.ClientHttp2Session | undefined;
  private closed = false;

  constructor(private readonly options: UnaryClientOptions) {}

  call(path: string, request: Uint8Array, callOptions: UnaryCallOptions = {}): Promise<UnaryResponse> {
    return new Promise<UnaryResponse>((resolve, reject) => {
      if (this.closed) return reject(new GrpcStatusError(GrpcStatus.UNAVAILABLE, 'the client is closed'));
      if (callOptions.signal?.aborted) return reject(cancelled());
      if (request.length > this.options.maxSendMessageBytes) {
        return reject(new GrpcStatusError(GrpcStatus.RESOURCE_EXHAUSTED,
          `sent message larger than max (${request.length} vs. ${this.options.maxSendMessageBytes})`));
      }
      const headers: http2.OutgoingHttpHeaders = {
        [HTTP2_HEADER_METHOD]: 'POST',
        [HTTP2_HEADER_SCHEME]: 'https',
        [HTTP2_HEADER_PATH]: path,
        [HTTP2_HEADER_AUTHORITY]: this.options.authority,
        [HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
        [HTTP2_HEADER_TE]: 'trailers',
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

      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.openSession().request(headers);
      } catch (error) {
        this.dropSession();
        return reject(new GrpcStatusError(GrpcStatus.UNAVAILABLE, `cannot start the call: ${(error as Error).message}`));
      }

      const session = stream.session;
      const connectionLost = () => session === undefined || session.destroyed || session.closed;
      const decoder = new MessageDecoder(this.options.maxReceiveMessageBytes);
      const metadata: IncomingMetadata = new Map();
      let message: Buffer | undefined;
      let status: { code: number; details: string } | undefined;
      let failure: GrpcStatusError | undefined;
      let settled = false;
      const finish = () => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        callOptions.signal?.removeEventListener('abort', onAbort);
        if (failure) return reject(failure);
        if (status === undefined) {
          // The connection went first (a plugin that crashed mid-call): UNAVAILABLE, as grpc-js says, so that
          // the caller goes on to ask whether the plugin exited.
          if (connectionLost()) return reject(new GrpcStatusError(GrpcStatus.UNAVAILABLE, 'the connection to the plugin ended during the call', metadata));
          return reject(new GrpcStatusError(streamEndCode(stream.rstCode), `the stream ended without a gRPC status (HTTP/2 code ${stream.rstCode ?? 'none'})`, metadata));
        }
        if (status.code !== GrpcStatus.OK) return reject(new GrpcStatusError(status.code, status.details, metadata));
        if (message === undefined) return reject(new GrpcStatusError(GrpcStatus.INTERNAL, 'the response had no message', metadata));
        resolve({ message, metadata });
      };
      // First failure wins; the stream is cancelled so the peer stops sending.
      const fail = (error: GrpcStatusError) => {
        failure ??= error;
        if (!stream.closed) stream.close(NGHTTP2_CANCEL);
        finish();
      };
      const onAbort = () => fail(cancelled());
      // Past what a timer can hold (about 24.8 days) the wait is unbounded here; the peer still has grpc-timeout.
      const timer = timeoutMs === undefined || timeoutMs > MAX_TIMER_MS ? undefined : setTimeout(() => fail(deadlineExceeded()), timeoutMs);
      callOptions.signal?.addEventListener('abort', onAbort, { once: true });

      stream.on('response', (responseHeaders) => {
        const httpStatus = Number(responseHeaders[HTTP2_HEADER_STATUS]);
        const contentType = String(responseHeaders[HTTP2_HEADER_CONTENT_TYPE] ?? '');
        if (httpStatus !== 200) return fail(new GrpcStatusError(httpStatusCode(httpStatus), `HTTP status ${httpStatus}`));
        if (!/^application\/grpc(?:$|[+;])/.test(contentType)) {
          return fail(new GrpcStatusError(GrpcStatus.UNKNOWN, `the response is not gRPC (content-type ${JSON.stringify(contentType.slice(0, 64))})`));
        }
        collectMetadata(metadata, responseHeaders);
        // Trailers-only: the status is in the headers and no body follows.
        if (responseHeaders['grpc-status'] !== undefined) status = readStatus(responseHeaders);
      });
      stream.on('data', (chunk: Buffer) => {
        if (status !== undefined) return fail(new GrpcStatusError(GrpcStatus.INTERNAL, 'data after the status'));
        let messages: Buffer[];
        try {
          messages = decoder.push(chunk);
        } catch (error) {
          return fail(error instanceof FrameError ? new GrpcStatusError(error.grpcCode, error.message) : new GrpcStatusError(GrpcStatus.INTERNAL, String(error)));
        }
        for (const received of messages) {
          if (message !== undefined) return fail(new GrpcStatusError(GrpcStatus.INTERNAL, 'a unary call received more than one response message'));
          message = received;
        }
      });
      stream.on('trailers', (trailers) => {
        collectMetadata(metadata, trailers);
        status = readStatus(trailers);
        if (!decoder.idle) failure ??= new GrpcStatusError(GrpcStatus.INTERNAL, 'the response ended inside a message');
      });
      // A session failure reaches each stream as an error, then close: the call reports the loss.
      stream.on('error', (error: Error & { code?: string }) => {
        failure ??= error.code === 'ERR_HTTP2_STREAM_ERROR'
          ? new GrpcStatusError(streamEndCode(stream.rstCode), `the peer reset the stream (HTTP/2 code ${stream.rstCode})`)
          : new GrpcStatusError(GrpcStatus.UNAVAILABLE, `connection to the plugin failed: ${error.message}`);
      });
      stream.on('close', finish);
      stream.end(frameMessage(request));
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

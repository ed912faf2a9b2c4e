import * as http2 from 'node:http2';
import { FrameError, MessageTooLarge, type MessageDecoder } from './grpc-frames.js';

/**
 * What a gRPC call over HTTP/2 says besides its messages, as grpc-go and grpc-js speak it: the request
 * headers (deadline as `grpc-timeout`, metadata), the response headers' checks, the status and its
 * percent-encoded `grpc-message` from trailers or a trailers-only response, and the status codes the
 * client itself reports. Shared by the lean client's unary and streaming calls.
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
    /** The status is the one the peer sent, not one this client made: what the peer refused is the peer's to change. */
    readonly fromPeer = false,
  ) {
    super(`${code} ${details}`);
  }
}

/**
 * A message over this client's own size limit, refused before it was sent or as it arrived: the setting to raise is
 * ours. grpc-js's wording ("larger than max"), with the sizes kept for the caller's diagnosis.
 */
export class MessageSizeError extends GrpcStatusError {
  constructor(
    readonly direction: 'sent' | 'received',
    readonly length: number,
    readonly limit: number,
  ) {
    super(GrpcStatus.RESOURCE_EXHAUSTED, `${direction} message larger than max (${length} vs. ${limit})`);
  }
}

export interface RequestOptions {
  /** Absolute deadline (ms since the epoch): sent as `grpc-timeout`, and the stream is cancelled then. */
  deadline?: number;
  metadata?: OutgoingMetadata;
}

const { HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_STATUS, NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

/** Headers that are the protocol's, never user metadata in either direction. */
const RESERVED_HEADER = /^(?::|grpc-(?:status|message|timeout|encoding|accept-encoding)$|content-type$|te$|user-agent$)/;
const METADATA_KEY = /^[0-9a-z_.-]+$/;
const GRPC_CONTENT_TYPE = /^application\/grpc(?:$|[+;])/;

/**
 * The request headers and the time left before the deadline (undefined without one). Throws
 * GrpcStatusError for a deadline already past or metadata that is not allowed.
 */
export function requestHeaders(path: string, authority: string, options: RequestOptions): { headers: http2.OutgoingHttpHeaders; timeoutMs: number | undefined } {
  // Literal keys: V8 keeps this a fast object, which node:http2 walks once per call.
  const headers: http2.OutgoingHttpHeaders = {
    ':method': 'POST',
    ':scheme': 'https',
    ':path': path,
    ':authority': authority,
    'content-type': 'application/grpc',
    te: 'trailers',
  };
  const timeoutMs = options.deadline === undefined ? undefined : options.deadline - Date.now();
  if (timeoutMs !== undefined) {
    if (timeoutMs <= 0) throw deadlineExceeded();
    headers['grpc-timeout'] = timeoutHeader(timeoutMs);
  }
  if (options.metadata) addMetadata(headers, options.metadata);
  return { headers, timeoutMs };
}

/** Why the response headers do not start a gRPC response, or undefined when they do. */
export function responseHeadersError(headers: http2.IncomingHttpHeaders): GrpcStatusError | undefined {
  const httpStatus = Number(headers[HTTP2_HEADER_STATUS]);
  if (httpStatus !== 200) return new GrpcStatusError(httpStatusCode(httpStatus), `HTTP status ${httpStatus}`);
  const contentType = String(headers[HTTP2_HEADER_CONTENT_TYPE] ?? '');
  if (!GRPC_CONTENT_TYPE.test(contentType)) {
    return new GrpcStatusError(GrpcStatus.UNKNOWN, `the response is not gRPC (content-type ${JSON.stringify(contentType.slice(0, 64))})`);
  }
  return undefined;
}

/** Past what a timer can hold (about 24.8 days) a wait is unbounded here; the peer still has grpc-timeout. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Response metadata from the headers and the trailers, protocol headers left out. */
export function incomingMetadata(headers: http2.IncomingHttpHeaders | undefined, trailers: http2.IncomingHttpHeaders | undefined): IncomingMetadata {
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

/** `grpc-timeout`: at most 8 digits (the spec's limit), in the finest unit that fits: ms, then s, min, h. */
export function timeoutHeader(ms: number): string {
  for (const [unit, factor] of [['m', 1], ['S', 1000], ['M', 60_000], ['H', 3_600_000]] as const) {
    const amount = Math.ceil(ms / factor);
    if (amount < 1e8) return `${amount}${unit}`;
  }
  return '99999999H';
}

export function readStatus(headers: http2.IncomingHttpHeaders): { code: number; details: string } {
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

export function cancelled(): GrpcStatusError {
  return new GrpcStatusError(GrpcStatus.CANCELLED, 'cancelled by the caller');
}

export function deadlineExceeded(): GrpcStatusError {
  return new GrpcStatusError(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded');
}

/**
 * How a call ended, judged once its response is over: undefined for OK, else the error with the
 * response's metadata. A stream that ended without a status is UNAVAILABLE when its connection went
 * first (a plugin that crashed mid-call), as grpc-js says, so that the caller goes on to ask whether the
 * plugin exited; otherwise what the stream's reset code means. `session` is the stream's, kept at its
 * start: a closed stream no longer names it.
 */
export function statusError(
  status: { code: number; details: string } | undefined,
  session: http2.Http2Session | undefined,
  rstCode: number | undefined,
  headers: http2.IncomingHttpHeaders | undefined,
  trailers: http2.IncomingHttpHeaders | undefined,
): GrpcStatusError | undefined {
  if (status?.code === GrpcStatus.OK) return undefined;
  const metadata = incomingMetadata(headers, trailers);
  if (status !== undefined) return new GrpcStatusError(status.code, status.details, metadata, true);
  if (session === undefined || session.destroyed || session.closed) {
    return new GrpcStatusError(GrpcStatus.UNAVAILABLE, 'the connection to the plugin ended during the call', metadata);
  }
  return new GrpcStatusError(streamEndCode(rstCode), `the stream ended without a gRPC status (HTTP/2 code ${rstCode ?? 'none'})`, metadata);
}

/** A stream's 'error' event as the call's failure: the peer's reset, or the connection's loss. */
export function streamError(error: Error & { code?: string }, rstCode: number | undefined): GrpcStatusError {
  return error.code === 'ERR_HTTP2_STREAM_ERROR'
    ? new GrpcStatusError(streamEndCode(rstCode), `the peer reset the stream (HTTP/2 code ${rstCode})`)
    : new GrpcStatusError(GrpcStatus.UNAVAILABLE, `connection to the plugin failed: ${error.message}`);
}

/**
 * The messages a chunk of a response body completes, or the status that ends the call: data after the
 * status (trailers-only, or trailers already in), or a frame the decoder refuses.
 */
export function bodyMessages(decoder: MessageDecoder, statusIn: boolean, chunk: Buffer): Buffer[] | GrpcStatusError {
  if (statusIn) return new GrpcStatusError(GrpcStatus.INTERNAL, 'data after the status');
  try {
    return decoder.push(chunk);
  } catch (error) {
    if (error instanceof MessageTooLarge) return new MessageSizeError('received', error.length, error.limit);
    return error instanceof FrameError ? new GrpcStatusError(error.grpcCode, error.message) : new GrpcStatusError(GrpcStatus.INTERNAL, String(error));
  }
}

/**
 * gRPC's length-prefixed messages (one flag byte, a 4-byte big-endian length, the message), as they
 * travel in HTTP/2 DATA frames. The decoder reads a peer's bytes: every declared length is checked
 * against a limit before anything is allocated for it.
 */

const PREFIX_BYTES = 5;
const FLAG_COMPRESSED = 1;

/** Why a peer's bytes are not a valid message stream, as the gRPC status a client reports for it. */
export class FrameError extends Error {
  constructor(
    /** RESOURCE_EXHAUSTED (8) for a message over the limit, INTERNAL (13) for anything malformed. */
    readonly grpcCode: 8 | 13,
    message: string,
  ) {
    super(message);
  }
}

/** A declared length over the decoder's limit: the sizes, so that the caller can say which setting to raise. */
export class MessageTooLarge extends FrameError {
  constructor(
    readonly length: number,
    readonly limit: number,
  ) {
    // grpc-js's wording ("larger than max"), which callers already recognise.
    super(8, `received message larger than max (${length} vs. ${limit})`);
  }
}

/** Writes an uncompressed message's prefix (flag byte, big-endian length) at the start of `target`. */
function writePrefix(target: Buffer, length: number): void {
  target[0] = 0;
  target.writeUInt32BE(length, 1);
}

/** The prefix alone, for a message written after it without a copy. */
export function messagePrefix(length: number): Buffer {
  const prefix = Buffer.allocUnsafe(PREFIX_BYTES);
  writePrefix(prefix, length);
  return prefix;
}

/** The message with its prefix, ready to write to a stream. */
export function frameMessage(message: Uint8Array): Buffer {
  const framed = Buffer.allocUnsafe(PREFIX_BYTES + message.length);
  writePrefix(framed, message.length);
  framed.set(message, PREFIX_BYTES);
  return framed;
}

/** The first buffer a message split over chunks gets; it doubles as the rest arrives, up to the declared length. */
const FIRST_BODY_BYTES = 64 * 1024;
/** How far ahead of what has arrived of a message its buffer may reach. */
const RESERVE_AHEAD = 16;

/**
 * Splits a stream of DATA bytes into messages, whatever the chunking. A declared length over
 * `maxMessageBytes` fails before it is buffered (a peer cannot make us allocate 4 GiB by saying so);
 * a compressed message fails too, since we never offer compression (no decompression bomb, no
 * codec confusion).
 */
export class MessageDecoder {
  private readonly prefix = Buffer.alloc(PREFIX_BYTES);
  private prefixFilled = 0;
  /** The declared length of the message being read, or -1 between messages. */
  private bodyLength = -1;
  /** What has arrived of it, at the start of a buffer that grows with what arrives. */
  private body: Buffer = EMPTY;
  private bodyFilled = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** True between messages: a stream that ends here ended cleanly. */
  get idle(): boolean {
    return this.prefixFilled === 0 && this.bodyLength < 0;
  }

  /** The complete messages `chunk` finishes, in order. Throws FrameError on a malformed stream. */
  push(chunk: Buffer): Buffer[] {
    const messages: Buffer[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.bodyLength < 0) {
        // The common case, a whole message in one chunk, is taken without copying the prefix.
        if (this.prefixFilled === 0 && chunk.length - offset >= PREFIX_BYTES) {
          this.startMessage(chunk[offset]!, chunk.readUInt32BE(offset + 1));
          offset += PREFIX_BYTES;
        } else {
          const take = Math.min(PREFIX_BYTES - this.prefixFilled, chunk.length - offset);
          chunk.copy(this.prefix, this.prefixFilled, offset, offset + take);
          this.prefixFilled += take;
          offset += take;
          if (this.prefixFilled < PREFIX_BYTES) break;
          this.prefixFilled = 0;
          this.startMessage(this.prefix[0]!, this.prefix.readUInt32BE(1));
        }
      }
      const length = this.bodyLength;
      if (length === 0) {
        // An empty message is complete at its prefix, even when the chunk ends there.
        messages.push(EMPTY);
        this.bodyLength = -1;
        continue;
      }
      const take = Math.min(length - this.bodyFilled, chunk.length - offset);
      if (this.bodyFilled === 0 && take === length) {
        // A message wholly inside this chunk is a view of it, not a copy.
        messages.push(chunk.subarray(offset, offset + take));
      } else {
        this.reserve(this.bodyFilled + take);
        chunk.copy(this.body, this.bodyFilled, offset, offset + take);
        this.bodyFilled += take;
        offset += take;
        if (this.bodyFilled < length) break;
        messages.push(this.body);
        this.body = EMPTY;
        this.bodyFilled = 0;
        this.bodyLength = -1;
        continue;
      }
      offset += take;
      this.bodyLength = -1;
    }
    return messages;
  }

  private startMessage(flags: number, length: number): void {
    if ((flags & FLAG_COMPRESSED) !== 0) {
      throw new FrameError(13, 'the peer sent a compressed message, but no compression was negotiated');
    }
    if (flags !== 0) throw new FrameError(13, `unknown message flags 0x${flags.toString(16)}`);
    if (length > this.maxMessageBytes) {
      throw new MessageTooLarge(length, this.maxMessageBytes);
    }
    this.bodyLength = length;
  }

  /**
   * Room for `needed` bytes of the current message. Attack: a peer that declares a 16 MiB message in a
   * 5-byte prefix and stalls would make us reserve 16 MiB per call for nothing. Memory follows what has
   * arrived instead, at most RESERVE_AHEAD times it: the buffer doubles, and takes the declared length
   * at once when that is within the bound (so a large message is copied at most twice on its way).
   */
  private reserve(needed: number): void {
    if (needed <= this.body.length) return;
    const size = needed * RESERVE_AHEAD >= this.bodyLength ? this.bodyLength : Math.min(this.bodyLength, Math.max(needed, this.body.length * 2, FIRST_BODY_BYTES));
    const grown = Buffer.allocUnsafe(size);
    this.body.copy(grown, 0, 0, this.bodyFilled);
    this.body = grown;
  }
}

const EMPTY = Buffer.alloc(0);

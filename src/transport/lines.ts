/**
 * Splits a child process's stdout or stderr into lines with a hard memory bound. A plugin controls these
 * bytes, so it must not be able to make the host buffer more than one line's worth however it writes.
 */
import { GatehouseError } from '../errors.js';

export interface LineSplitterOptions {
  /** Longest line delivered whole, in bytes, not counting the "\n" or "\r\n" that ends it. */
  maxLineBytes: number;
  /**
   * Called once per line. A line longer than maxLineBytes is delivered once, cut at a character boundary
   * to at most maxLineBytes bytes, with truncated=true. Every input byte yields at most one UTF-16 code
   * unit, so `line.length <= maxLineBytes` always holds.
   */
  onLine(line: string, truncated: boolean): void;
}

/** Keeps option mistakes from turning into huge allocations. */
export const MAX_LINE_BYTES_LIMIT = 64 * 1024 * 1024;

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

/** How many bytes a UTF-8 sequence starting with `lead` claims, or 0 if `lead` does not start one. */
function sequenceLength(lead: number): number {
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  return 0;
}

/** UTF-8's narrower second-byte ranges that rule out overlong forms, surrogates and code points past U+10FFFF. */
function secondByteFits(lead: number, second: number): boolean {
  if (lead === 0xe0) return second >= 0xa0 && second <= 0xbf;
  if (lead === 0xed) return second >= 0x80 && second <= 0x9f;
  if (lead === 0xf0) return second >= 0x90 && second <= 0xbf;
  if (lead === 0xf4) return second >= 0x80 && second <= 0x8f;
  return second >= 0x80 && second <= 0xbf;
}

/**
 * The cut at or below `limit` that keeps a character whole: if the bytes just before the limit are the
 * valid beginning of a multi-byte character that the limit would split, the cut moves before it. Invalid
 * bytes are left in place (they decode to U+FFFD either way). This is exactly what a streaming UTF-8
 * decoder holds back at the end of its input.
 */
function characterBoundary(bytes: Buffer, limit: number): number {
  for (let back = 1; back <= 3 && back <= limit; back++) {
    const byte = bytes[limit - back];
    if (byte === undefined) return limit;
    if ((byte & 0xc0) === 0x80) continue;
    if (sequenceLength(byte) <= back) return limit;
    const second = bytes[limit - back + 1];
    if (back >= 2 && second !== undefined && !secondByteFits(byte, second)) return limit;
    return limit - back;
  }
  return limit;
}

export class LineSplitter {
  readonly #maxLineBytes: number;
  readonly #onLine: (line: string, truncated: boolean) => void;
  /** Holds at most maxLineBytes + 1 bytes: one more than a line, for the "\r" of a "\r\n". */
  #pending: Buffer = Buffer.alloc(0);
  #pendingLength = 0;
  /** True after an overlong line was delivered, until the "\n" that ends it. */
  #discarding = false;
  #ended = false;

  constructor(options: LineSplitterOptions) {
    const { maxLineBytes, onLine } = options;
    // At least 4 so that a cut at a character boundary always keeps at least one character.
    if (!Number.isSafeInteger(maxLineBytes) || maxLineBytes < 4 || maxLineBytes > MAX_LINE_BYTES_LIMIT) {
      throw new GatehouseError(
        'INVALID_OPTIONS',
        `maxLineBytes must be an integer from 4 to ${MAX_LINE_BYTES_LIMIT}`,
      );
    }
    if (typeof onLine !== 'function') throw new GatehouseError('INVALID_OPTIONS', 'onLine must be a function');
    this.#maxLineBytes = maxLineBytes;
    this.#onLine = onLine;
  }

  /** Bytes held for the current unfinished line; never more than maxLineBytes + 1. */
  get bufferedBytes(): number {
    return this.#pendingLength;
  }

  push(chunk: Buffer): void {
    // The stream has ended; bytes after that cannot belong to any line we could still deliver.
    if (this.#ended) return;
    const limit = this.#maxLineBytes + 1;
    let position = 0;
    while (position < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, position);
      const end = newline === -1 ? chunk.length : newline;
      if (this.#discarding) {
        // The rest of an overlong line is skipped without being copied anywhere.
        if (newline === -1) return;
        this.#discarding = false;
        position = newline + 1;
        continue;
      }
      const room = limit - this.#pendingLength;
      const available = end - position;
      this.#append(chunk, position, position + Math.min(available, room));
      if (available > room) {
        // More than maxLineBytes + 1 bytes before any "\n": too long even if the last one is a "\r".
        this.#deliverTruncated();
        this.#discarding = newline === -1;
        position = newline === -1 ? chunk.length : newline + 1;
        continue;
      }
      if (newline === -1) return;
      let length = this.#pendingLength;
      if (length > 0 && this.#pending[length - 1] === CARRIAGE_RETURN) length -= 1;
      this.#deliver(length);
      position = newline + 1;
    }
  }

  /** Delivers a final line that had no "\n". A lone trailing "\r" is part of it, since no "\n" follows. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#discarding) {
      this.#discarding = false;
      return;
    }
    if (this.#pendingLength > 0) this.#deliver(this.#pendingLength);
    this.#pending = Buffer.alloc(0);
  }

  #append(chunk: Buffer, start: number, end: number): void {
    const needed = this.#pendingLength + (end - start);
    if (needed > this.#pending.length) {
      // Grows by doubling up to the cap, so short lines never cost a maxLineBytes allocation.
      const size = Math.min(this.#maxLineBytes + 1, Math.max(needed, this.#pending.length * 2, 256));
      const grown = Buffer.alloc(size);
      this.#pending.copy(grown, 0, 0, this.#pendingLength);
      this.#pending = grown;
    }
    // Copied, not referenced: a view would keep the whole (possibly large) chunk alive.
    chunk.copy(this.#pending, this.#pendingLength, start, end);
    this.#pendingLength = needed;
  }

  #deliver(length: number): void {
    if (length > this.#maxLineBytes) {
      this.#deliverTruncated();
      return;
    }
    // Never fatal: a plugin's bad bytes become U+FFFD (as TextDecoder does; the property test compares
    // the two), and a BOM stays data since each line is decoded on its own. No view is made per line.
    const line = this.#pending.toString('utf8', 0, length);
    // State is reset before the callback so a throwing callback leaves the splitter usable.
    this.#pendingLength = 0;
    this.#onLine(line, false);
  }

  #deliverTruncated(): void {
    const cut = characterBoundary(this.#pending, this.#maxLineBytes);
    const line = this.#pending.toString('utf8', 0, cut);
    this.#pendingLength = 0;
    this.#onLine(line, true);
  }
}

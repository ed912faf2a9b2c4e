/** A stream written one message per message read: grpc-js's server streams and the lean client's calls alike. */
export interface PacedStream<T> {
  write(message: T): boolean;
  isPaused(): boolean;
  pause(): unknown;
  resume(): unknown;
  once(event: 'drain', listener: () => void): unknown;
}

/**
 * Writes on a stream whose incoming messages bring replies (reflection's answers, the broker's knock
 * acknowledgements) and stops reading while the replies wait for the peer, until they drain: the peer's
 * messages then wait in the HTTP/2 windows, not in our memory.
 */
export function writePaced<T>(stream: PacedStream<T>, message: T): void {
  // Attack: a peer sending messages and never reading the replies, which would queue here without bound.
  if (stream.write(message) || stream.isPaused()) return;
  stream.pause();
  stream.once('drain', () => stream.resume());
}

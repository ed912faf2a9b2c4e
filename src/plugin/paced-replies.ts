import type * as grpc from '@grpc/grpc-js';

/**
 * Writes on a server stream whose requests bring replies (reflection's answers, the broker's knock
 * refusals) and stops reading requests while the replies wait for the host, until they drain: the
 * requests then wait in the HTTP/2 windows, not in the plugin.
 */
export function writePaced<Reply>(call: grpc.ServerDuplexStream<unknown, Reply>, reply: Reply): void {
  // Attack: a host sending requests and never reading the replies, which would queue in the plugin without bound.
  if (call.write(reply) || call.isPaused()) return;
  call.pause();
  call.once('drain', () => call.resume());
}

/**
 * A unix socket a plugin names (in its handshake line, a broker announcement or a reattach record), made
 * safe to connect to. The path is the plugin's: it may run through a directory the plugin owns, and so
 * through a file system the plugin serves itself (FUSE), which answers when it likes. Every walk of that
 * path therefore happens in libuv's thread pool, bounded; the host connects through a hard link of its
 * own instead, in a directory only it can write.
 */
import { lstatSync } from 'node:fs';
import { link } from 'node:fs/promises';
import { join } from 'node:path';
import { GatehouseError } from '../errors.js';
import type { HandshakeLine } from '../transport/handshake.js';
import { makeHostDir, type HostDir } from './live-plugins.js';

/** What to connect to, and what to call once that connection has closed for good. */
export interface PluginSocket {
  /** A path in the host's own directory (unix), or the address as announced (tcp). */
  address: string;
  /** Removes the host's link and its directory; idempotent. */
  release(): Promise<void>;
}

/** libuv's thread pool: UV_THREADPOOL_SIZE threads (1 to 1024), else 4. Every file system call waits for one. */
function ioThreads(): number {
  const size = Number(process.env.UV_THREADPOOL_SIZE);
  return Number.isInteger(size) && size >= 1 && size <= 1024 ? size : 4;
}

/** Plugin paths whose walk outlived its check's deadline: each holds a thread of the pool until its file system answers. */
const unansweredChecks: string[] = [];

/**
 * A fresh 0700 directory of the host's, made at once (so that a launch makes it while the plugin starts),
 * for the link to one socket a plugin names.
 */
export class PluginSocketLink {
  private readonly dir: Promise<HostDir>;
  private released: Promise<void> | undefined;

  constructor() {
    this.dir = makeHostDir('gatehouse-link-');
    // Reported by link(); a launch that fails before it has nothing to report.
    this.dir.catch(() => {});
  }

  /**
   * Checks the socket a plugin named and links it here: a socket (not a file or a directory), on the
   * host's temporary file system, owned by `owner`, the user the plugin runs as (undefined matches no one).
   * Returns what to connect to, which no other user can replace (TCP: the address as it is). Given up
   * at `deadline`.
   */
  async link(address: Pick<HandshakeLine, 'network' | 'address'>, owner: number | undefined, deadline: number): Promise<string> {
    if (address.network !== 'unix') return address.address;
    // Attack: a plugin that names socket after socket on a file system that never answers (a broker dial
    // each) would take every thread of the pool, and with them the host's files, its audit log and every other
    // plugin's launch. Half the pool at most waits on such file systems; past that the host asks no more.
    const threads = ioThreads();
    if (unansweredChecks.length >= Math.max(1, Math.floor(threads / 2))) {
      throw new GatehouseError(
        'CONNECT_FAILED',
        `plugin socket ${address.address} not checked: ${unansweredChecks.length} earlier socket checks (${unansweredChecks.join(', ')}) ` +
          `still wait on file systems that do not answer, each holding one of the host's ${threads} I/O threads; kill the plugins that named them`,
      );
    }
    const dir = (await this.dir).path;
    const linked = join(dir, 'link.sock');
    // Attack: a path on a file system the plugin serves itself (FUSE) whose lookups it never answers. The walk
    // happens here, in the pool, and ends at the deadline; connect() would make it on the event loop's thread
    // (libuv connects a unix socket synchronously) and hold the whole host for as long as the plugin likes.
    await withinDeadline(link(address.address, linked), address.address, deadline).catch((cause: unknown) => {
      throw linkFailure(address.address, dir, cause);
    });
    // Attack: a socket swapped for another user's between the check and the connection. What is checked
    // is the link, in a directory no one else can write: the very socket the host will connect to. Nothing
    // on its path is the plugin's, so it is looked up at once, without a round trip through the pool.
    const stats = lstatSync(linked);
    if (!stats.isSocket()) {
      throw new GatehouseError('CONNECT_FAILED', `plugin address ${address.address} is not a socket`);
    }
    // Attack: a plugin naming a socket another user controls, to have us talk to that user's server.
    if (stats.uid !== owner) {
      throw new GatehouseError('CONNECT_FAILED', `plugin socket ${address.address} belongs to uid ${stats.uid}, not to the plugin's uid ${owner}`);
    }
    return linked;
  }

  /** Removes the link and its directory, once the connection through it has closed for good; idempotent. */
  release(): Promise<void> {
    return (this.released ??= this.dir.then(
      (dir) => dir.remove(),
      () => undefined,
    ));
  }
}

/** One socket a plugin named, checked and linked (see PluginSocketLink); the link is gone again if the check fails. */
export async function linkPluginSocket(
  address: Pick<HandshakeLine, 'network' | 'address'>,
  owner: number | undefined,
  deadline: number,
): Promise<PluginSocket> {
  if (address.network !== 'unix') return { address: address.address, release: async () => {} };
  const socketLink = new PluginSocketLink();
  try {
    return { address: await socketLink.link(address, owner, deadline), release: () => socketLink.release() };
  } catch (error) {
    await socketLink.release();
    throw error;
  }
}

/** `operation` on a path the plugin chose, given up at `deadline`; one that outlives it is counted until it settles. */
async function withinDeadline<T>(operation: Promise<T>, path: string, deadline: number): Promise<T> {
  const waitMs = Math.max(0, deadline - Date.now());
  let timer: NodeJS.Timeout | undefined;
  let overdue = false;
  // Cleared as soon as `operation` settles: the race below settles in the same microtasks, before any timer runs.
  const unanswered = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      overdue = true;
      unansweredChecks.push(path);
      reject(new GatehouseError('CONNECT_FAILED', `plugin socket ${path}: no answer from its file system within ${waitMs} ms`));
    }, waitMs);
  });
  const answered = operation.finally(() => {
    if (overdue) unansweredChecks.splice(unansweredChecks.indexOf(path), 1);
  });
  return Promise.race([answered, unanswered]).finally(() => clearTimeout(timer));
}

function linkFailure(path: string, dir: string, cause: unknown): GatehouseError {
  if (cause instanceof GatehouseError) return cause;
  const code = (cause as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new GatehouseError('CONNECT_FAILED', `plugin socket ${path} does not exist`, { cause });
  if (code === 'EXDEV') {
    return new GatehouseError(
      'CONNECT_FAILED',
      `plugin socket ${path} is not on the file system of the host's temporary directory (${dir}): the host connects only ` +
        'through a link of its own, so that no file system the plugin could serve is walked on its event loop; ' +
        'have the plugin create its sockets in the directory the host gives it (PLUGIN_UNIX_SOCKET_DIR, TMPDIR)',
      { cause },
    );
  }
  if (code === 'EPERM') {
    return new GatehouseError('CONNECT_FAILED', `plugin address ${path} is not a socket the host may use (a directory, or another user's file)`, { cause });
  }
  return new GatehouseError('CONNECT_FAILED', `plugin socket ${path} cannot be checked: ${(cause as Error).message}`, { cause });
}

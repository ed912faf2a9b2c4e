/**
 * The broker's multiplexed mode, as go-plugin >= 1.6 does it (PLUGIN_MULTIPLEX_GRPC): no socket per
 * brokered service; every brokered connection is a new yamux stream on the plugin's one connection.
 *
 * Before it opens a stream for id N, the dialing side sends a knock (ConnInfo{service_id: N,
 * knock: {knock: true}}) on the broker stream and waits for the acknowledgement (knock and ack set,
 * with `error` if the other side serves no N). The serving side gives the next stream the peer opens
 * to the last id it acknowledged; on the plugin, a stream no knock announced is a main connection.
 */
import type { Duplex } from 'node:stream';
import { GatehouseError } from '../errors.js';
import type { BrokerMultiplexer } from './broker.js';
import type { ConnInfo } from './broker-protocol.js';
import { openLocalBridge, type LocalBridge } from './local-bridge.js';
import { peerText } from './peer-text.js';
import { WaitersById } from './waiters-by-id.js';
import type { YamuxSession, YamuxStream } from './yamux.js';

/**
 * How long a knock for an id not served yet waits for it: a go-plugin peer may knock while the
 * goroutine that serves the id is still starting. Ours registers an id before handing it out.
 */
const EARLY_KNOCK_WAIT_MS = 2000;
/**
 * Knocks the peer may have waiting at once: for ids not served yet, and acknowledged ones whose stream
 * has not come. go-plugin knocks one dial at a time; beyond this, a knock is refused at once.
 */
export const MAX_PENDING_KNOCKS = 64;

export interface MultiplexOptions {
  /** Private directory for the bridges that carry grpc-js channels into streams. */
  bridgeDir: string;
  /** How long a knock waits for its acknowledgement. */
  knockTimeoutMs: number;
  /** The plugin's main server; on the host (undefined) a stream no knock announced is refused. */
  unannounced?: (stream: Duplex) => void;
}

interface AckWaiter {
  resolve: () => void;
  reject: (error: GatehouseError) => void;
}

function brokerError(message: string): GatehouseError {
  return new GatehouseError('BROKER_FAILED', message);
}

export class BrokerMultiplex implements BrokerMultiplexer {
  private readonly acceptors = new Map<number, (connection: Duplex) => void>();
  /** Acknowledged ids, oldest first: the peer's next streams are theirs, in this order. */
  private readonly knocked: number[] = [];
  /** Knocks for ids not served yet, answered when served or with an error at their deadline. */
  private readonly earlyKnocks = new Map<number, NodeJS.Timeout>();
  private readonly acks = new WaitersById<AckWaiter>();
  private readonly bridges = new Set<LocalBridge>();
  /** Serializes knock-then-open: the peer hands its next stream to the last knock it acknowledged. */
  private dialing: Promise<unknown> = Promise.resolve();
  private closed = false;
  private session: YamuxSession | undefined;

  constructor(
    private readonly send: (info: ConnInfo) => void,
    private readonly options: MultiplexOptions,
  ) {}

  /** @internal How many ids have knocks waiting for the peer's acknowledgement. */
  get waitingIds(): number {
    return this.acks.size;
  }

  /** The yamux session on the plugin's connection; the plugin gets it when the host connects. */
  attach(session: YamuxSession): void {
    this.session = session;
    // Attack: a peer opening streams nobody asked for; each gets one RST and costs us no stream.
    session.acceptStreams = () => this.knocked.length > 0 || this.options.unannounced !== undefined;
    session.on('stream', (stream) => this.route(stream));
  }

  accept(id: number, inject: (connection: Duplex) => void): void {
    this.acceptors.set(id, inject);
    const early = this.earlyKnocks.get(id);
    if (early !== undefined) {
      clearTimeout(early);
      this.earlyKnocks.delete(id);
      this.acknowledge(id, '');
    }
  }

  stopAccepting(id: number): void {
    this.acceptors.delete(id);
  }

  async dialTarget(id: number): Promise<{ target: string; lastError: () => Error | undefined; close: () => void }> {
    if (this.closed) throw brokerError('the broker is closed');
    const bridge = await openLocalBridge(this.options.bridgeDir, (wanted) => this.knockAndOpen(id, wanted));
    this.bridges.add(bridge);
    return {
      target: bridge.target,
      lastError: bridge.lastError,
      close: () => {
        this.bridges.delete(bridge);
        void bridge.close();
      },
    };
  }

  receive(info: ConnInfo): void {
    const knock = info.knock;
    if (knock === undefined || !knock.knock) return;
    if (knock.ack) {
      const waiter = this.acks.take(info.serviceId);
      if (knock.error === '') waiter?.resolve();
      else waiter?.reject(brokerError(`broker id ${info.serviceId}: the peer refused the knock: ${peerText(knock.error)}`));
      return;
    }
    // Attack: a peer knocking for ever more ids, each costing us an entry (and a timer) until it expires.
    if (this.knocked.length + this.earlyKnocks.size >= MAX_PENDING_KNOCKS) {
      this.acknowledge(info.serviceId, `more than ${MAX_PENDING_KNOCKS} knocks are waiting`);
    } else if (this.acceptors.has(info.serviceId)) {
      this.acknowledge(info.serviceId, '');
    } else if (!this.earlyKnocks.has(info.serviceId)) {
      // go-plugin lets a knock wait for a listener that is about to start; after that it is refused.
      const id = info.serviceId;
      const timer = setTimeout(() => {
        this.earlyKnocks.delete(id);
        this.acknowledge(id, `no brokered service with id ${id}`);
      }, EARLY_KNOCK_WAIT_MS);
      timer.unref();
      this.earlyKnocks.set(id, timer);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.earlyKnocks.values()) clearTimeout(timer);
    this.earlyKnocks.clear();
    for (const waiter of this.acks.takeAll()) waiter.reject(brokerError('the broker is closed'));
    for (const bridge of this.bridges) void bridge.close();
    this.bridges.clear();
  }

  private acknowledge(id: number, error: string): void {
    if (error === '') this.knocked.push(id);
    this.send({ serviceId: id, network: '', address: '', knock: { knock: true, ack: true, error } });
  }

  private route(stream: YamuxStream): void {
    const id = this.knocked.shift();
    const inject = id === undefined ? this.options.unannounced : this.acceptors.get(id);
    // The host serves nothing the plugin did not knock for: an unannounced stream there is refused.
    if (inject === undefined) stream.destroy();
    else inject(stream);
  }

  private knockAndOpen(id: number, wanted: () => boolean): Promise<Duplex> {
    const attempt = this.dialing.then(async () => {
      const session = this.session;
      if (session === undefined) throw brokerError('no multiplexed connection yet');
      // Attack: a peer slow to acknowledge knocks while connections are attempted again and again; each queued
      // attempt knocked in turn, one knock timeout each, long after the dial it was for had failed. (Once a
      // knock is acknowledged its stream is opened even so: the peer gives its next stream to that id.)
      if (!wanted()) throw brokerError(`broker id ${id}: the connection that wanted a stream is gone`);
      await this.knock(id);
      return session.open();
    });
    this.dialing = attempt.catch(() => {});
    return attempt;
  }

  private knock(id: number): Promise<void> {
    if (this.closed) return Promise.reject(brokerError('the broker is closed'));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        // Attack: a peer handing out ever new ids and acknowledging no knock; a knock that gives up keeps nothing.
        this.acks.remove(id, waiter);
        reject(brokerError(`broker id ${id}: no acknowledgement of the knock within ${this.options.knockTimeoutMs} ms`));
      }, this.options.knockTimeoutMs);
      const waiter: AckWaiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.acks.add(id, waiter);
      this.send({ serviceId: id, network: '', address: '', knock: { knock: true, ack: false, error: '' } });
    });
  }
}

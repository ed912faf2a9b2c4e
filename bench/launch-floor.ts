// The floor under "launch to first response" (issue 14): what any Node.js host must spend to get a first
// answer from a plugin, each part timed on its own. The plugin is spawned by hand with the environment a
// gatehouse host gives (no setpriv wrapper, no socket checks, no health check, no grpc-js), its handshake
// line read, one mutual-TLS connection pinned to the certificate it announced made with node:tls, and
// then, for a like-for-like comparison with gatehouse's launch row, the same first Put and Get over a bare
// node:http2 session on that connection (bench/http2-floor.ts's client).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import * as http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { loadKVService } from '../examples/kv/kv.js';
import { generateEphemeralIdentity, type EphemeralIdentity } from '../src/tls/certificate.js';
import { hostTls, pinnedConnector } from '../src/tls/pinning.js';
import { parseHandshakeLine } from '../src/transport/handshake.js';
import { firstLine, method, WINDOW_BYTES } from './http2-floor.js';
import { hostEnv } from './plugin-start.js';

/** One launch, in ms, each part from the end of the one before. */
export interface LaunchFloorSample {
  /** spawn() until Node reports the process started. */
  spawnMs: number;
  /** From then to the plugin's handshake line on its stdout: the plugin's own start. */
  startMs: number;
  /** Parse the line, a secure context pinned to the announced certificate, connect and TLS handshake. */
  tlsMs: number;
  /** An HTTP/2 session on that connection, then a 64-byte Put and a Get answered. */
  callsMs: number;
}

export interface LaunchFloorResult {
  /** The process's first launch (one-time loading), apart as in the launch rows. */
  first: LaunchFloorSample;
  samples: LaunchFloorSample[];
}

const kvService = loadKVService();

async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const closed = once(child, 'close');
  try {
    process.kill(-(child.pid as number), 'SIGKILL');
  } catch {
    // already gone
  }
  await closed;
}

/** One launch by hand, each part timed; `identity` and `socketDir` are the caller's, made once. */
export async function floorLaunch(command: readonly string[], identity: EphemeralIdentity, socketDir: string): Promise<LaunchFloorSample> {
  const [file, ...args] = command;
  if (file === undefined) throw new Error('no plugin command');
  const env = hostEnv(identity.certificatePem, socketDir);
  const t0 = performance.now();
  // Its own process group, as launch() spawns it, so that the kill reaches all it started.
  const child = spawn(file, args, { env, detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  const line = firstLine(child.stdout);
  let socket: tls.TLSSocket | undefined;
  let session: http2.ClientHttp2Session | undefined;
  try {
    const t1 = await once(child, 'spawn').then(() => performance.now());
    const handshake = parseHandshakeLine(await line, [1]);
    const t2 = performance.now();
    if (handshake.network !== 'unix' || handshake.serverCertificate === undefined) throw new Error('the floor needs a unix socket and AutoMTLS');
    const pinned = pinnedConnector(hostTls(identity), handshake.serverCertificate);
    const connecting = pinned.connect({ path: handshake.address });
    socket = connecting;
    const t3 = await pinned.ready(connecting).then(() => performance.now());
    session = http2.connect('https://localhost', { createConnection: () => connecting, settings: { initialWindowSize: WINDOW_BYTES } });
    session.on('error', () => {}); // a failed call below says what went wrong
    const kv = { Get: method(session, kvService.Get), Put: method(session, kvService.Put) };
    await kv.Put({ key: 'k', value: Buffer.alloc(64, 'v') });
    await kv.Get({ key: 'k' });
    const t4 = performance.now();
    return { spawnMs: t1 - t0, startMs: t2 - t1, tlsMs: t3 - t2, callsMs: t4 - t3 };
  } finally {
    session?.destroy();
    socket?.destroy();
    await killed(child);
  }
}

/** n+1 launches one after another; the first is returned apart. The kill after each is not timed. */
export async function launchFloor(command: readonly string[], n: number): Promise<LaunchFloorResult> {
  // One identity for the process: its cost is gatehouse's (a figure of its own), not the floor's.
  const identity = generateEphemeralIdentity();
  const socketDir = await mkdtemp(join(tmpdir(), 'gatehouse-launch-floor-'));
  try {
    const first = await floorLaunch(command, identity, socketDir);
    const samples: LaunchFloorSample[] = [];
    for (let i = 0; i < n; i++) samples.push(await floorLaunch(command, identity, socketDir));
    return { first, samples };
  } finally {
    await rm(socketDir, { recursive: true, force: true });
  }
}

// The floor of the unary figures: the least a Node.js host can do per call over the same mutual TLS to
// the same plugin. A plugin spawned by hand (environment, handshake line), one pinned TLS connection,
// one HTTP/2 session, and per call one stream with a length-prefixed message and nothing else: no
// deadline, metadata, status decoding beyond OK, size limit or reconnection. The plugin's stderr is
// drained unread (a host must read it; gatehouse also parses and routes each line). The codec is the same
// as the gatehouse host's, so the gap between the two is the client's own work.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { loadKVService } from '../examples/kv/kv.js';
import { generateEphemeralIdentity } from '../src/tls/certificate.js';
import { hostTls, pinnedConnector } from '../src/tls/pinning.js';
import { parseHandshakeLine } from '../src/transport/handshake.js';
import { hostEnv } from './plugin-start.js';
import { big, CONCURRENCIES, putSmall, unary, type KVCalls, type UnaryResult, type WorkloadOptions, type WorkloadResult } from './host-workloads.js';

export const WINDOW_BYTES = 1 << 20;

export function firstLine(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const end = text.indexOf('\n');
      if (end >= 0) {
        stream.off('data', onData);
        resolve(text.slice(0, end));
      }
    };
    stream.on('data', onData);
    stream.once('end', () => reject(new Error(`the plugin exited before its handshake line: ${text}`)));
  });
}

function call(session: http2.ClientHttp2Session, path: string, request: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('trailers', (trailers) => {
      if (trailers['grpc-status'] !== '0') reject(new Error(`grpc-status ${String(trailers['grpc-status'])}`));
    });
    stream.on('end', () => resolve(Buffer.concat(chunks).subarray(5)));
    stream.on('error', reject);
    const framed = Buffer.allocUnsafe(5 + request.length);
    framed[0] = 0;
    framed.writeUInt32BE(request.length, 1);
    request.copy(framed, 5);
    stream.end(framed);
  });
}

export function method<Req, Res>(session: http2.ClientHttp2Session, definition: grpc.MethodDefinition<Req, Res>) {
  return async (request: Req): Promise<Res> => definition.responseDeserialize(await call(session, definition.path, definition.requestSerialize(request)));
}

/** The floor's client on its own plugin process, and what closes both. */
export interface FloorClient {
  kv: KVCalls;
  close(): void;
}

/** Spawns the plugin by hand and opens the floor's one pinned connection and HTTP/2 session to it. */
export async function openFloorClient(command: readonly string[]): Promise<FloorClient> {
  const [file, ...args] = command;
  if (file === undefined) throw new Error('no plugin command');
  const identity = generateEphemeralIdentity();
  const socketDir = mkdtempSync(join(tmpdir(), 'gatehouse-floor-'));
  // stderr is a pipe that the floor drains, as every host of this plugin must: the plugin writes a log
  // line per call, and a plugin writing to /dev/null would not be the same plugin doing the same work.
  const child = spawn(file, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: hostEnv(identity.certificatePem, socketDir),
  });
  child.stderr.resume();
  const stop = (): void => {
    child.kill('SIGKILL');
    rmSync(socketDir, { recursive: true, force: true });
  };
  try {
    const handshake = parseHandshakeLine(await firstLine(child.stdout), [1]);
    if (handshake.network !== 'unix' || handshake.serverCertificate === undefined) throw new Error('the floor needs a unix socket and AutoMTLS');
    const pinned = pinnedConnector(hostTls(identity), handshake.serverCertificate);
    const socket = pinned.connect({ path: handshake.address });
    await pinned.ready(socket);
    const session = http2.connect('https://localhost', {
      createConnection: () => socket,
      settings: { initialWindowSize: WINDOW_BYTES },
    });
    session.once('connect', () => {
      if (!session.destroyed) session.setLocalWindowSize(WINDOW_BYTES);
    });
    const kvService = loadKVService();
    return {
      kv: { Get: method(session, kvService.Get), Put: method(session, kvService.Put) },
      close: () => {
        session.destroy();
        stop();
      },
    };
  } catch (error) {
    stop();
    throw error;
  }
}

/** The unary and 1 MiB workloads of {@link workload} through the floor client; it launches nothing to time. */
export async function http2FloorWorkload(options: WorkloadOptions): Promise<WorkloadResult> {
  const floor = await openFloorClient(options.command);
  try {
    await putSmall(floor.kv);
    const results: UnaryResult[] = [];
    for (const concurrency of CONCURRENCIES) results.push(await unary(floor.kv, concurrency, options));
    return { firstLaunchMs: Number.NaN, launchMs: [], unary: results, big: await big(floor.kv, options) };
  } finally {
    floor.close();
  }
}

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
import { big, unary, type UnaryResult, type WorkloadOptions, type WorkloadResult } from './host-workloads.js';

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

/** The unary and 1 MiB workloads of {@link workload} through the floor client; it launches nothing to time. */
export async function http2FloorWorkload(options: WorkloadOptions): Promise<WorkloadResult> {
  const [file, ...args] = options.command;
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
    session.once('connect', () => session.setLocalWindowSize(WINDOW_BYTES));
    try {
      const kvService = loadKVService();
      const kv = { Get: method(session, kvService.Get), Put: method(session, kvService.Put) };
      await kv.Put({ key: 'small', value: Buffer.alloc(64, 's') });
      const results: UnaryResult[] = [];
      for (const concurrency of [1, 16]) results.push(await unary(kv, concurrency, options));
      return { firstLaunchMs: Number.NaN, launchMs: [], unary: results, big: await big(kv, options) };
    } finally {
      session.destroy();
    }
  } finally {
    child.kill('SIGKILL');
    rmSync(socketDir, { recursive: true, force: true });
  }
}

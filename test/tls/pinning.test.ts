import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as http2 from 'node:http2';
import * as tls from 'node:tls';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import { generateEphemeralIdentity, type EphemeralIdentity } from '../../src/tls/certificate.js';
import { checkHealth } from '../../src/host/connection.js';
import { leanCalls } from '../../src/transport/call-path.js';
import { healthImplementation, healthService } from '../../src/transport/health.js';
import { classifyTlsFailure, hostTls, MAX_PINNED_CONNECTIONS, pinnedConnector, type PinnedConnector } from '../../src/tls/pinning.js';
import { listenAt, serverAcceptor } from '../../src/transport/acceptor.js';
import { GrpcHttp2Client } from '../../src/transport/grpc-http2-client.js';
import { waitUntil } from '../helpers/process.js';

const execFileAsync = promisify(execFile);
const pinningModule = fileURLToPath(new URL('../../src/tls/pinning.js', import.meta.url));

test('a process started with --tls-min-v1.0 is refused (downgrade to TLS 1.0/1.1)', async (t) => {
  const script = `const { assertTlsMinimum } = await import(${JSON.stringify(pinningModule)});
    try { assertTlsMinimum(); console.log('allowed'); } catch (e) { console.log(e.code); }`;
  const weakened = await execFileAsync(process.execPath, ['--tls-min-v1.0', '--input-type=module', '-e', script]);
  t.is(weakened.stdout.trim(), 'TLS_FAILED');
  const normal = await execFileAsync(process.execPath, ['--input-type=module', '-e', script]);
  t.is(normal.stdout.trim(), 'allowed');
});

test('a local certificate verification failure means the server is not the announced one', (t) => {
  t.is(classifyTlsFailure('No connection established. Last error: Error: self-signed certificate')?.code, 'CERTIFICATE_MISMATCH');
  t.is(classifyTlsFailure('unable to verify the first certificate')?.code, 'CERTIFICATE_MISMATCH');
});

test('a TLS alert means the plugin refused our certificate', (t) => {
  t.is(classifyTlsFailure('SSL routines:ssl3_read_bytes:tlsv13 alert certificate required')?.code, 'TLS_FAILED');
});

test('a failure that is not about TLS is left alone', (t) => {
  t.is(classifyTlsFailure('connect ECONNREFUSED /tmp/x.sock'), undefined);
});

/** The host's own client on `path`, pinned as a launch pins it. */
function hostClient(path: string, pinned: PinnedConnector): GrpcHttp2Client {
  return new GrpcHttp2Client({
    connect: () => pinned.connect({ path }),
    ready: (connection) => pinned.ready(connection),
    authority: 'localhost',
    maxReceiveMessageBytes: 1024 * 1024,
    maxSendMessageBytes: 1024 * 1024,
    windowBytes: 65_535,
  });
}

const HTTP2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

interface Intruder {
  /** Its own certificate and key; none when it offers no certificate at all. */
  identity?: EphemeralIdentity;
  alpn: string[];
}

/**
 * Connects as `intruder` with a client that trusts anything, sends an HTTP/2 request at once (before
 * the server could have judged it, whatever ALPN said), and reports whether any HTTP/2 came back.
 */
async function tryAs(path: string, intruder: Intruder): Promise<{ http2FromServer: boolean }> {
  const socket = tls.connect({
    path,
    ca: [],
    rejectUnauthorized: false,
    ALPNProtocols: intruder.alpn,
    ...(intruder.identity ? { cert: intruder.identity.certificatePem, key: intruder.identity.privateKeyPem } : {}),
  });
  socket.on('error', () => {});
  let http2FromServer = false;
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const answered = (): void => {
    http2FromServer = true;
    socket.destroy();
  };
  if (!intruder.alpn.includes('h2')) {
    // Node's own HTTP/2 client will not speak without h2 agreed, so the preface and an empty SETTINGS by hand.
    socket.once('secureConnect', () => socket.write(Buffer.concat([Buffer.from(HTTP2_PREFACE), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])])));
    socket.on('data', answered);
    await ended;
    return { http2FromServer };
  }
  const session = http2.connect('https://localhost', { createConnection: () => socket });
  session.on('error', () => {});
  session.on('remoteSettings', answered);
  const request = session.request({ ':method': 'POST', ':path': '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc' });
  request.on('error', () => {});
  request.on('response', answered);
  request.end(Buffer.alloc(5));
  await ended;
  return { http2FromServer };
}

/** A health server as a plugin serves it (serverAcceptor) on a fresh socket, pinned to `host`; gone when the test ends. */
async function pinnedHealthServer(
  t: ExecutionContext,
  host: EphemeralIdentity,
  plugin: EphemeralIdentity,
  implementation: grpc.UntypedServiceImplementation = healthImplementation(),
): Promise<{ path: string; acceptor: Server }> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-pin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const server = new grpc.Server();
  server.addService(healthService, implementation);
  const path = join(dir, 'plugin.sock');
  const acceptor = serverAcceptor(server, { own: plugin, peerCertificateDer: host.certificateDer });
  await listenAt(acceptor, { path });
  t.teardown(() => {
    acceptor.close();
    server.forceShutdown();
  });
  return { path, acceptor };
}

test('a pinned server cuts another certificate, no certificate, or a client that did not agree to h2 after the handshake: no HTTP/2 either way, no handler runs; the pinned peer is served and seen', async (t) => {
  const host = generateEphemeralIdentity();
  const plugin = generateEphemeralIdentity();
  let handled = 0;
  let seenPeer: Buffer | undefined;
  const check = healthImplementation().Check as grpc.handleUnaryCall<unknown, unknown>;
  const { path } = await pinnedHealthServer(t, host, plugin, {
    Check: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      handled += 1;
      seenPeer = call.getAuthContext().sslPeerCertificate?.raw;
      check(call, callback);
    },
  });

  // Attack: another local process on the plugin's socket, with a valid certificate of its own, with none,
  // or with the host's certificate but without agreeing to h2 (grpc-js's own server refused those).
  for (const intruder of [
    { identity: generateEphemeralIdentity(), alpn: ['h2'] },
    { alpn: ['h2'] },
    { identity: host, alpn: [] },
  ]) {
    t.deepEqual(await tryAs(path, intruder), { http2FromServer: false });
  }
  t.is(handled, 0, 'no handler ran for a client that was not pinned');

  const client = hostClient(path, pinnedConnector(hostTls(host), plugin.certificateDer));
  t.teardown(() => client.destroy());
  await checkHealth(leanCalls(client), 10_000);
  t.is(handled, 1);
  t.deepEqual(seenPeer, host.certificateDer, "a handler sees the host's certificate, as under grpc-js's own TLS");
});

test('the host writes no byte of HTTP/2 to a server that is not the announced one, or that did not agree to h2, and says which', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-pin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const host = generateEphemeralIdentity();
  const announced = generateEphemeralIdentity();
  const impostor = generateEphemeralIdentity();

  // Attack: a process that took over the plugin's socket, with a valid certificate of its own; and the
  // plugin's own certificate on a server that speaks no HTTP/2.
  for (const [i, [server, expected]] of ([
    [{ identity: impostor, alpn: ['h2'] }, /presented certificate .* not the one it announced/],
    [{ identity: announced, alpn: undefined }, /did not agree to HTTP\/2/],
  ] as const).entries()) {
    const path = join(dir, `${i}.sock`);
    let received = 0;
    const listener = tls.createServer(
      { cert: server.identity.certificatePem, key: server.identity.privateKeyPem, ...(server.alpn ? { ALPNProtocols: [...server.alpn] } : {}) },
      (socket) => socket.on('data', (chunk: Buffer) => (received += chunk.length)).on('error', () => {}),
    );
    await listenAt(listener, { path });
    let mismatch: Error | undefined;
    const client = hostClient(path, pinnedConnector(hostTls(host), announced.certificateDer, (error) => (mismatch = error)));
    const error = await t.throwsAsync(checkHealth(leanCalls(client), 5000));
    t.regex(error?.message ?? '', expected);
    t.is(received, 0, 'not a byte after the handshake');
    t.is(mismatch !== undefined, server.identity === impostor);
    client.destroy();
    listener.close();
  }
});

test('a pinned server holds at most MAX_PINNED_CONNECTIONS connections, those that never finish their TLS handshake included', async (t) => {
  // Attack: a local user (any, over TCP) opening connection after connection that never finishes its handshake:
  // each held ~80 KiB of the plugin's memory and a descriptor, without end (4,000 took 320 MiB).
  const host = generateEphemeralIdentity();
  const plugin = generateEphemeralIdentity();
  const { path, acceptor } = await pinnedHealthServer(t, host, plugin);
  const open = (): { socket: Socket; closed: () => boolean } => {
    let closed = false;
    const socket = connect({ path });
    socket.on('error', () => {});
    socket.on('close', () => (closed = true));
    // Half a TLS record header: the handshake never completes.
    socket.write(Buffer.from([0x16, 0x03, 0x01]));
    return { socket, closed: () => closed };
  };
  const held = Array.from({ length: MAX_PINNED_CONNECTIONS }, open);
  t.teardown(() => held.forEach(({ socket }) => socket.destroy()));
  let count = 0;
  const counted = (): boolean => {
    acceptor.getConnections((_error, n) => (count = n));
    return count === MAX_PINNED_CONNECTIONS;
  };
  t.true(await waitUntil(counted, 10_000), `the server took the first ${MAX_PINNED_CONNECTIONS}: ${count}`);
  const extra = Array.from({ length: 10 }, open);
  t.teardown(() => extra.forEach(({ socket }) => socket.destroy()));
  await waitUntil(() => extra.every(({ closed }) => closed()) || (counted(), count > MAX_PINNED_CONNECTIONS), 10_000);
  t.true(extra.every(({ closed }) => closed()), `connections past the cap are closed (the server holds ${count})`);
  // Once they go, the pinned peer is served again.
  held.forEach(({ socket }) => socket.destroy());
  const client = hostClient(path, pinnedConnector(hostTls(host), plugin.certificateDer));
  t.teardown(() => client.destroy());
  await checkHealth(leanCalls(client), 10_000);
  t.pass();
});

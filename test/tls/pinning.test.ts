import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { generateEphemeralIdentity } from '../../src/tls/certificate.js';
import { checkHealth } from '../../src/host/connection.js';
import { grpcJsCalls } from '../../src/transport/call-path.js';
import { clientOn } from '../../src/transport/channel.js';
import { healthImplementation, healthService } from '../../src/transport/health.js';
import { classifyTlsFailure, pinnedClientInterceptor } from '../../src/tls/pinning.js';

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

/** The part of grpc-js's server call the interceptor touches, recording what happened. */
function fakeCall(peerDer: Buffer | undefined, session: object | undefined) {
  const seen = { authContextReads: 0, started: 0, status: undefined as grpc.StatusObject | undefined };
  const call = {
    stream: session === undefined ? undefined : { session },
    getAuthContext: () => {
      seen.authContextReads += 1;
      return peerDer ? { transportSecurityType: 'ssl', sslPeerCertificate: { raw: peerDer } } : {};
    },
    start: () => void (seen.started += 1),
    sendStatus: (status: grpc.StatusObject) => void (seen.status = status),
  };
  return { call: call as unknown as grpc.ServerInterceptingCallInterface, seen };
}

const method = { path: '/kv.KV/Get' } as grpc.ServerMethodDefinition<unknown, unknown>;
const noListener = {} as Parameters<grpc.ServerInterceptingCall['start']>[0];

test('the plugin refuses a call whose client certificate is not exactly the host certificate', (t) => {
  const host = generateEphemeralIdentity();
  const other = generateEphemeralIdentity();
  const interceptor = pinnedClientInterceptor(host.certificateDer);

  const intruder = fakeCall(other.certificateDer, {});
  interceptor(method, intruder.call).start(noListener);
  t.is(intruder.seen.started, 0, 'the handler never ran');
  t.is(intruder.seen.status?.code, grpc.status.UNAUTHENTICATED);

  const anonymous = fakeCall(undefined, undefined);
  interceptor(method, anonymous.call).start(noListener);
  t.is(anonymous.seen.status?.code, grpc.status.UNAUTHENTICATED);
});

test('the pin is checked once per connection, and on every call where the connection is unknown', (t) => {
  const host = generateEphemeralIdentity();
  const interceptor = pinnedClientInterceptor(host.certificateDer);
  const session = {};
  const calls = [fakeCall(host.certificateDer, session), fakeCall(host.certificateDer, session)];
  for (const { call } of calls) interceptor(method, call).start(noListener);
  t.deepEqual(calls.map(({ seen }) => [seen.authContextReads, seen.started]), [[1, 1], [0, 1]]);

  const unknown = [fakeCall(host.certificateDer, undefined), fakeCall(host.certificateDer, undefined)];
  for (const { call } of unknown) interceptor(method, call).start(noListener);
  t.deepEqual(unknown.map(({ seen }) => seen.authContextReads), [1, 1]);
});

test('grpc-js exposes the HTTP/2 session to interceptors, so the per-connection cache is in use', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-pin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sessions: Array<object | undefined> = [];
  const server = new grpc.Server({
    interceptors: [
      (_method, call) => {
        sessions.push((call as { stream?: { session?: object } }).stream?.session);
        return new grpc.ServerInterceptingCall(call);
      },
    ],
  });
  server.addService(healthService, healthImplementation());
  const address = `unix:${join(dir, 's.sock')}`;
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error) => (error ? reject(error) : resolve())),
  );
  const channel = new grpc.Channel(address, grpc.credentials.createInsecure(), {});
  for (let i = 0; i < 2; i++) await checkHealth(grpcJsCalls(clientOn(channel)), 10_000);
  channel.close();
  server.forceShutdown();
  t.is(sessions.length, 2);
  t.truthy(sessions[0], 'no session: every call would read the peer certificate again');
  t.is(sessions[0], sessions[1], 'two calls on one connection share one session');
});

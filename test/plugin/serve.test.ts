import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tls from 'node:tls';
import { promisify } from 'node:util';
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { KV_COOKIE } from '../../examples/kv/kv.js';
import { negotiateVersion } from '../../src/plugin/serve.js';
import { checkHealth } from '../../src/host/connection.js';
import { grpcJsCalls } from '../../src/transport/call-path.js';
import { clientOn, grpcTarget, openChannel } from '../../src/transport/channel.js';
import { derToPem, generateEphemeralIdentity, type EphemeralIdentity } from '../../src/tls/certificate.js';
import { pinnedChannelCredentials } from '../../src/tls/pinning.js';
import { controllerService } from '../../src/transport/controller.js';
import { parseHandshakeLine, type HandshakeLine } from '../../src/transport/handshake.js';
import { kvPluginScript } from '../helpers/paths.js';

const execFileAsync = promisify(execFile);

interface StartedPlugin {
  handshake: HandshakeLine;
  exit: Promise<number | null>;
  pid: number;
}

/** Starts the KV plugin the way a host does, with exactly this environment, and reads its handshake. */
function startPlugin(env: Record<string, string>): Promise<StartedPlugin> {
  const child = spawn(process.execPath, [kvPluginScript], { env, stdio: ['ignore', 'pipe', 'ignore'] });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const newline = buffered.indexOf('\n');
      if (newline >= 0) resolve({ handshake: parseHandshakeLine(buffered.slice(0, newline), [1]), exit, pid: child.pid as number });
    });
    void exit.then((code) => reject(new Error(`plugin exited with ${code} before its handshake`)));
  });
}

// Like a host, give each plugin a private directory for its socket, removed after the test even when
// the plugin was SIGKILLed and could not clean up.
const socketRoot = mkdtempSync(join(tmpdir(), 'gatehouse-serve-test-'));
test.after.always(() => rmSync(socketRoot, { recursive: true, force: true }));

function hostEnv(host: EphemeralIdentity): Record<string, string> {
  return {
    [KV_COOKIE.key]: KV_COOKIE.value,
    PLUGIN_PROTOCOL_VERSIONS: '1',
    PLUGIN_CLIENT_CERT: host.certificatePem,
    PLUGIN_UNIX_SOCKET_DIR: socketRoot,
  };
}

function channelAs(identity: EphemeralIdentity, handshake: HandshakeLine): grpc.Channel {
  const credentials = pinnedChannelCredentials(identity, handshake.serverCertificate as Buffer);
  return openChannel(grpcTarget(handshake), credentials, 4 * 1024 * 1024);
}

test('serve: without the magic cookie the plugin prints a human message and exits 1', async (t) => {
  const error = await t.throwsAsync(execFileAsync(process.execPath, [kvPluginScript], { env: {}, timeout: 10_000 }));
  t.is((error as { code?: number }).code, 1);
  t.regex(String((error as { stderr?: string }).stderr), /This binary is a plugin/);
});

test('serve: without PLUGIN_CLIENT_CERT the plugin refuses to serve in clear', async (t) => {
  const env = { [KV_COOKIE.key]: KV_COOKIE.value, PLUGIN_PROTOCOL_VERSIONS: '1' };
  const error = await t.throwsAsync(execFileAsync(process.execPath, [kvPluginScript], { env, timeout: 10_000 }));
  t.is((error as { code?: number }).code, 1);
  t.regex(String((error as { stderr?: string }).stderr), /PLUGIN_CLIENT_CERT/);
});

test('serve: the socket lives in a fresh 0700 directory and is itself 0600', async (t) => {
  const host = generateEphemeralIdentity();
  const plugin = await startPlugin(hostEnv(host));
  t.teardown(() => process.kill(plugin.pid, 'SIGKILL'));
  t.is(plugin.handshake.network, 'unix');
  t.is(statSync(dirname(plugin.handshake.address)).mode & 0o777, 0o700);
  t.is(statSync(plugin.handshake.address).mode & 0o777, 0o600);
});

test('serve: the host with the pinned certificate is served; a client with another valid certificate is refused', async (t) => {
  const host = generateEphemeralIdentity();
  const intruder = generateEphemeralIdentity();
  const plugin = await startPlugin(hostEnv(host));
  t.teardown(() => process.kill(plugin.pid, 'SIGKILL'));

  // Attack: another local process connecting to the plugin's socket with a certificate of its own.
  const intruderChannel = channelAs(intruder, plugin.handshake);
  const refused = await t.throwsAsync(checkHealth(grpcJsCalls(clientOn(intruderChannel)), 5000));
  t.regex(refused?.message ?? '', /UNAVAILABLE|UNAUTHENTICATED/);
  intruderChannel.close();

  const hostChannel = channelAs(host, plugin.handshake);
  await t.notThrowsAsync(checkHealth(grpcJsCalls(clientOn(hostChannel)), 5000));
  hostChannel.close();
});

test('serve: Shutdown over the controller stops the plugin with exit code 0 and removes its socket directory', async (t) => {
  const host = generateEphemeralIdentity();
  const plugin = await startPlugin(hostEnv(host));
  const channel = channelAs(host, plugin.handshake);
  await grpcJsCalls(clientOn(channel)).unary(controllerService.Shutdown, {}, { timeoutMs: 5000 });
  t.is(await plugin.exit, 0);
  t.false(existsSync(dirname(plugin.handshake.address)));
  channel.close();
});

test('serve: the plugin exits when its host dies', async (t) => {
  // Attack surface: an orphaned plugin keeps a socket open and code running that nobody supervises.
  const host = generateEphemeralIdentity();
  const parentScript = fileURLToPath(new URL('../fixtures/parent-that-dies.js', import.meta.url));
  const parent = spawn(process.execPath, [parentScript, JSON.stringify(hostEnv(host))], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const pid = await new Promise<number>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  parent.kill('SIGKILL');
  const gone = await new Promise<boolean>((resolve) => {
    const end = Date.now() + 10_000;
    const poll = setInterval(() => {
      let alive = true;
      try {
        process.kill(pid, 0);
      } catch {
        alive = false;
      }
      if (!alive || Date.now() > end) {
        clearInterval(poll);
        resolve(!alive);
      }
    }, 50);
  });
  t.true(gone, `plugin ${pid} outlived its host`);
});

test('negotiateVersion: the highest version both sides speak wins', (t) => {
  t.is(negotiateVersion([1, 2, 3], [1, 2]), 2);
  t.is(negotiateVersion([3, 1], [3, 2, 1]), 3);
});

test('negotiateVersion: with none in common the lowest of ours is announced, for the host to report', (t) => {
  t.is(negotiateVersion([4, 5], [1, 2]), 4);
  t.is(negotiateVersion([2], []), 2);
});

test('serve: host and plugin negotiate TLS 1.3 when both can, never below 1.2', async (t) => {
  const host = generateEphemeralIdentity();
  const plugin = await startPlugin(hostEnv(host));
  t.teardown(() => process.kill(plugin.pid, 'SIGKILL'));
  const negotiated = (maxVersion: 'TLSv1.3' | 'TLSv1.2' | 'TLSv1.1') =>
    new Promise<string>((resolve) => {
      const socket = tls.connect({
        path: plugin.handshake.address,
        servername: 'localhost',
        ca: derToPem(plugin.handshake.serverCertificate as Buffer, 'CERTIFICATE'),
        cert: host.certificatePem,
        key: host.privateKeyPem,
        ALPNProtocols: ['h2'],
        minVersion: maxVersion === 'TLSv1.1' ? 'TLSv1' : 'TLSv1.2',
        maxVersion,
      });
      socket.once('secureConnect', () => {
        resolve(socket.getProtocol() ?? 'none');
        socket.destroy();
      });
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(`refused: ${error.code}`));
    });
  t.is(await negotiated('TLSv1.3'), 'TLSv1.3');
  t.is(await negotiated('TLSv1.2'), 'TLSv1.2');
  // The alert comes from the plugin: our client offered TLS 1.1 and the plugin answered protocol_version.
  t.is(await negotiated('TLSv1.1'), 'refused: ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
});

/** Runs the KV plugin with `env` until it exits; its exit code and stderr. */
async function failedStart(env: Record<string, string>): Promise<{ code: number | undefined; stderr: string }> {
  const error = await execFileAsync(process.execPath, [kvPluginScript], { env, timeout: 20_000 }).then(
    () => undefined,
    (failure: unknown) => failure as { code?: number; stderr?: string },
  );
  return { code: error?.code, stderr: String(error?.stderr ?? '') };
}

test('serve: multiplexing with a socket group is refused: a member of the group could connect first and own the one connection', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-serve-mux-group-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = { ...hostEnv(generateEphemeralIdentity()), PLUGIN_UNIX_SOCKET_DIR: dir, PLUGIN_MULTIPLEX_GRPC: 'true', PLUGIN_UNIX_SOCKET_GROUP: String(process.getgid?.() ?? 0) };
  const { code, stderr } = await failedStart(env);
  t.is(code, 1, stderr);
  t.regex(stderr, /refuses multiplexing \(PLUGIN_MULTIPLEX_GRPC\) with a socket group.*"code":"MULTIPLEX_UNSUPPORTED"/);
  t.deepEqual(readdirSync(dir), [], 'nothing left behind');
});

test('serve: a PLUGIN_UNIX_SOCKET_DIR it cannot make its directory in (missing, a file) fails the start with ENV_INVALID naming the variable', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'gatehouse-serve-baddir-'));
  t.teardown(() => rmSync(parent, { recursive: true, force: true }));
  writeFileSync(join(parent, 'file'), '');
  for (const dir of [join(parent, 'missing'), join(parent, 'file')]) {
    const { code, stderr } = await failedStart({ ...hostEnv(generateEphemeralIdentity()), PLUGIN_UNIX_SOCKET_DIR: dir });
    t.is(code, 1, stderr);
    t.regex(stderr, /PLUGIN_UNIX_SOCKET_DIR.*"code":"ENV_INVALID"/, dir);
  }
});

test('serve: a socket directory too long for a socket path fails the start saying so, and leaves nothing behind, there or above it', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'gatehouse-serve-long-'));
  t.teardown(() => rmSync(parent, { recursive: true, force: true }));
  // Under 108 bytes itself, too long once the plugin's own directory and socket name are added.
  const dir = join(parent, 'd'.repeat(Math.max(1, 100 - parent.length - 1)));
  mkdirSync(dir);
  const { code, stderr } = await failedStart({ ...hostEnv(generateEphemeralIdentity()), PLUGIN_UNIX_SOCKET_DIR: dir });
  t.is(code, 1, stderr);
  t.regex(stderr, /a unix socket path is at most 107 bytes.*"code":"CONNECT_FAILED"/);
  t.deepEqual(readdirSync(dir), [], 'no private directory left');
  t.deepEqual(readdirSync(parent), [basename(dir)], 'no socket bound under a cut path');
});

// A plugin in another language, written as go-plugin's docs teach it (test/interop/python/kv_plugin.py on
// Debian's python3-grpcio): five-field handshake line, plaintext, a loopback port the plugin picks.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { isGatehouseError, launch, launchVerified, type LaunchOptions } from '../../src/index.js';
import { formatManifest, generateKeyPair, signManifest } from '../../src/verify/index.js';
import { tempDir, writeFileWithMode } from '../discover/temp-dir.js';
import { repoRoot } from '../helpers/paths.js';
import { isAlive } from '../helpers/process.js';
import { recordingAudit } from '../hostile/harness.js';
import { recordingLogger } from '../helpers/recording-logger.js';

/** Debian's interpreter: the `python3` a pyenv shim puts first on PATH has no grpc. */
const PYTHON = '/usr/bin/python3';
const pluginScript = join(repoRoot, 'test', 'interop', 'python', 'kv_plugin.py');
const mtlsPluginScript = join(repoRoot, 'test', 'interop', 'python', 'kv_mtls_plugin.py');
const kvService = loadKVService();

function pythonHasGrpc(): boolean {
  try {
    execFileSync(PYTHON, ['-c', 'import grpc, cryptography'], { stdio: 'ignore', env: {}, timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

const available = pythonHasGrpc();
const missing = `${PYTHON} cannot import grpc and cryptography: install Debian's python3-grpcio and python3-cryptography (bash .ci/run does)`;

/** Like goTest: runs when Python's grpc is there, fails without it under CI=true, else skips with a visible line. */
function pythonTest(title: string, implementation: (t: ExecutionContext) => Promise<void>): void {
  if (available) test(title, implementation);
  else if (process.env.CI === 'true') test(title, (t) => void t.fail(`CI=true: ${missing}`));
  else test.skip(title, () => undefined);
}
if (!available && process.env.CI !== 'true') {
  test('Python interop plugin cannot run here', (t) => {
    t.log(`skipped: ${missing}`);
    t.pass();
  });
}

/** A loopback port free right now: the plugin listens on a fixed port, and several suites share this machine. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no TCP port');
  return address.port;
}

async function pythonPlugin(extra: Partial<LaunchOptions> = {}): Promise<LaunchOptions & { port: number }> {
  const port = await freePort();
  return { command: PYTHON, args: [pluginScript], cookie: KV_COOKIE, env: { KV_PLUGIN_PORT: String(port) }, port, ...extra };
}

pythonTest('python plugin: with plaintext asked for by name, Put, Get and a clean stop on Shutdown', async (t) => {
  const options = await pythonPlugin({ insecurePlaintext: true });
  const plugin = await launch(options);
  t.is(plugin.address, `127.0.0.1:${options.port}`, 'the port the plugin picked, not one from PLUGIN_MIN/MAX_PORT');
  t.is(plugin.certificateSha256, undefined);
  const kv = plugin.client(kvService);
  await kv.Put({ key: 'greeting', value: Buffer.from('from python') });
  t.is((await kv.Get({ key: 'greeting' })).value.toString(), 'from python');
  t.deepEqual(await plugin.kill(), { code: 0, signal: null }, 'it stopped on Shutdown, not on a signal');
  t.false(isAlive(plugin.pid));
});

pythonTest('python plugin: by default its five-field line is refused as PLAINTEXT_REFUSED, saying how to proceed', async (t) => {
  const audit = recordingAudit();
  const error = await t.throwsAsync(launch({ ...(await pythonPlugin()), audit }));
  t.true(isGatehouseError(error, 'PLAINTEXT_REFUSED'), String(error));
  t.regex(error?.message ?? '', /offered no TLS certificate/);
  t.regex(error?.message ?? '', /insecurePlaintext/);
  for (const event of audit.events) if (event.type === 'launch') t.false(isAlive(event.pid), 'the refused plugin was killed');
});

pythonTest('python plugin with AutoMTLS (docs/other-languages.md): pinned both ways by default, hclog levels, a clean stop on Shutdown', async (t) => {
  const logger = recordingLogger();
  // No bytecode written beside the module it imports: the checkout stays as it was.
  const plugin = await launch({ command: PYTHON, args: [mtlsPluginScript], cookie: KV_COOKIE, logger, env: { PYTHONDONTWRITEBYTECODE: '1' } });
  t.regex(plugin.certificateSha256 ?? '', /^[0-9a-f]{64}$/, 'the certificate of its sixth field is pinned');
  const kv = plugin.client(kvService);
  await kv.Put({ key: 'greeting', value: Buffer.from('over mutual TLS') });
  t.is((await kv.Get({ key: 'greeting' })).value.toString(), 'over mutual TLS');
  t.deepEqual(await plugin.kill(), { code: 0, signal: null }, 'it stopped on Shutdown, not on a signal');
  const serving = logger.records.find((record) => record.message === 'kv plugin serving');
  t.is(serving?.level, 'info', 'its hclog JSON line is logged at its level');
});

pythonTest('python plugin with AutoMTLS, signed and sealed: an entry with a python3 interpreter and its module in files', async (t) => {
  // As docs/other-languages.md lists it: the script is `path`, the module it imports is in `files`.
  const dir = await tempDir(t);
  const entry = async (name: string) => {
    const bytes = await readFile(join(repoRoot, 'test', 'interop', 'python', name));
    await writeFileWithMode(dir, name, bytes, 0o644);
    return { path: name, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
  };
  const main = await entry('kv_mtls_plugin.py');
  const text = formatManifest({
    schema: 'gatehouse.manifest/v1',
    version: 1,
    expires: new Date(Date.now() + 86_400_000).toISOString(),
    plugins: [{ name: 'kv-python', ...main, interpreter: { path: PYTHON }, files: [await entry('kv_plugin.py')] }],
  });
  const manifestPath = join(dir, 'manifest.json');
  await writeFile(manifestPath, text);
  const keys = generateKeyPair();
  await writeFile(`${manifestPath}.minisig`, signManifest(Buffer.from(text), keys.secretKey));
  const plugin = await launchVerified({ manifestPath, plugin: 'kv-python', policy: { trustedKeys: [keys.publicKey] }, cookie: KV_COOKIE });
  t.deepEqual(plugin.verification.files.map((file) => file.role), ['plugin', 'file', 'interpreter']);
  const kv = plugin.client(kvService);
  await kv.Put({ key: 'k', value: Buffer.from('sealed') });
  t.is((await kv.Get({ key: 'k' })).value.toString(), 'sealed');
  t.deepEqual(await plugin.kill(), { code: 0, signal: null });
});

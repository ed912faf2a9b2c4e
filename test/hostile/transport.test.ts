// Plugins that point the host at something other than their own server: an address off the machine,
// a socket another user owns, a server with another certificate.
import { execFile, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { generateEphemeralIdentity } from '../../src/tls/certificate.js';
import { encodeCertificateField } from '../../src/transport/handshake.js';
import { AT_ONCE_MS, expectRefusal, fake, hostStillWorks, privateTmpdir } from './harness.js';
import { requireRoot, requireTool } from './requires.js';

const execFileAsync = promisify(execFile);
const sharedTmp = privateTmpdir(test);
const certificate = encodeCertificateField(generateEphemeralIdentity().certificateDer);

test('transport: a non-loopback TCP address is refused before any connection attempt (network namespace proof)', async (t) => {
  // Attack: a plugin steering the host's TLS client, and its certificate, to another machine.
  // Proof: the host runs in a fresh network namespace with only loopback, where 192.0.2.10 is a local
  // address with a listener on the announced port. No packet can leave the namespace, and any attempt
  // to connect would reach the listener; the control connection shows that it would be seen.
  const unshare = requireTool(t, 'unshare');
  const ip = unshare && requireTool(t, 'ip');
  if (!unshare || !ip) return;
  const host = fileURLToPath(new URL('../fixtures/tcp-refusal-host.js', import.meta.url));
  const setup = `${ip} link set lo up && ${ip} addr add 192.0.2.10/32 dev lo && exec "$0" "$1"`;
  const { stdout } = await execFileAsync(unshare, ['-rn', '/bin/sh', '-c', setup, process.execPath, host], { timeout: 40_000 });
  const result = JSON.parse(stdout.trim()) as { code: string; control: number; attempts: number; interfaces: string[] };
  t.deepEqual(result.interfaces, ['lo'], 'nothing but loopback in the namespace');
  t.is(result.control, 1, 'the listener sees a connection to the announced address');
  t.is(result.code, 'ADDRESS_NOT_LOOPBACK');
  t.is(result.attempts, 0, 'the host tried to connect to the non-loopback address');
  await hostStillWorks(t);
});

test('transport: a socket another user owns is refused before connecting to it', async (t) => {
  // Attack: a plugin naming a socket that another local user listens on, to have the host talk to it.
  if (!requireRoot(t)) return;
  const setpriv = requireTool(t, 'setpriv');
  if (!setpriv) return;
  const NOBODY = 65534;
  // Outside the host's private temporary directory, which nobody cannot enter.
  const dir = mkdtempSync(join(sharedTmp, 'gatehouse-foreign-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  chownSync(dir, NOBODY, NOBODY);
  const socket = join(dir, 'other.sock');
  const listen = `const s = require('node:net').createServer((c) => { process.stdout.write('connection\\n'); c.destroy(); });
    s.listen(process.argv[1], () => process.stdout.write('listening\\n'));`;
  const other = spawn(setpriv, ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', '--', process.execPath, '-e', listen, socket], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => void other.kill('SIGKILL'));
  let output = '';
  other.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    other.stdout.on('data', () => output.includes('listening') && resolve());
    other.once('exit', (code) => reject(new Error(`the listener as nobody exited with ${code}`)));
  });

  const { error } = await expectRefusal(t, fake('line', { FAKE_LINE: `1|1|unix|${socket}|grpc|${certificate}` }), 'CONNECT_FAILED');
  t.regex(error.message, /belongs to uid 65534, not to the plugin's uid 0/);
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.false(output.includes('connection'), 'the host connected to the other user\'s socket');
  await hostStillWorks(t);
});

test('transport: a server presenting another certificate than the one announced is CERTIFICATE_MISMATCH', async (t) => {
  // Attack: an impostor answering on the plugin's socket (the fake plugin's "wrong-certificate" mode,
  // also used by test/host/launch.test.ts).
  await expectRefusal(t, fake('wrong-certificate'), 'CERTIFICATE_MISMATCH', AT_ONCE_MS);
  await hostStillWorks(t);
});

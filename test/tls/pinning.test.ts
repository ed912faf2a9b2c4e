import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { classifyTlsFailure } from '../../src/tls/pinning.js';

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

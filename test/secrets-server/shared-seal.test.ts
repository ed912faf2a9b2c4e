// A restored copy of a home, run beside the original (to test a backup), brings the original's sealDir along.
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { initHome, type ServerConfig } from '../../examples/secrets-server/config.js';
import { startTestServer } from './harness.js';

const MAIN = fileURLToPath(new URL('../../examples/secrets-server/main.js', import.meta.url));

test('server: a second server sharing the seal directory removes only its own sealed engines when it stops, never the running one\'s', async (t) => {
  const s = await startTestServer(t);
  t.is((await s.api('POST', '/v1/sys/mounts/secret', { plugin: 'kv', version: '1.0.0' })).status, 200);
  const config = JSON.parse(await readFile(join(s.home, 'config.json'), 'utf8')) as ServerConfig;
  const ours = (await readdir(config.sealDir)).filter((name) => name.includes(`-${process.pid}-`));
  t.is(ours.length, 1, 'the running engine\'s sealed copy');
  // The copy: another home on the same release and the same sealDir, run as its own process, with an engine of its own.
  const home = join(s.root, 'copy');
  const { rootToken } = await initHome({ home, release: config.release, port: 0, sealDir: config.sealDir });
  const child = spawn(process.execPath, [MAIN, 'serve', '--home', home], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let url = '';
  for await (const line of createInterface({ input: child.stdout })) {
    const match = /^listening on (\S+)/.exec(line);
    if (match) {
      url = match[1] as string;
      break;
    }
  }
  const mounted = await fetch(`${url}/v1/sys/mounts/secret`, { method: 'POST', headers: { 'x-vault-token': rootToken }, body: JSON.stringify({ plugin: 'kv', version: '1.0.0' }) });
  t.is(mounted.status, 200);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  t.is(await exited, 0);
  // Attack on availability, by accident: the copy's stop swept every sealed copy in the directory, the original's included.
  t.deepEqual((await readdir(config.sealDir)).filter((name) => ours.includes(name)), ours);
  t.deepEqual((await readdir(config.sealDir)).filter((name) => !ours.includes(name)), [], 'the copy removed its own');
  t.is((await s.api('PUT', '/v1/secret/data/x', { data: { v: 1 } })).status, 200);
});

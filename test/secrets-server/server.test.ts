// The secrets server end to end: HTTP requests against a real server running real, signed engine plugins.
import { spawn } from 'node:child_process';
import { appendFile, readFile, rename, writeFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { verifyAuditLog } from 'gatehouse-plugins';
import { AuditHasher } from '../../examples/secrets-server/audit-hmac.js';
import { auditedRequests, startTestServer } from './harness.js';

const SECRET = 'hunter2-but-much-longer-and-unique-7f3a9c';

test('server: kv writes and reads versioned secrets; transit encrypts and decrypts; both survive a server restart', async (t) => {
  const s = await startTestServer(t);
  t.is((await s.api('POST', '/v1/sys/mounts/secret', { plugin: 'kv', version: '1.0.0' })).status, 200);
  t.is((await s.api('POST', '/v1/sys/mounts/transit', { plugin: 'transit', version: '1.0.0' })).status, 200);
  t.is((await s.api('PUT', '/v1/secret/data/a/b', { data: { v: 'one' } })).json.data.version, 1);
  t.is((await s.api('PUT', '/v1/secret/data/a/b', { data: { v: 'two' } })).json.data.version, 2);
  t.is((await s.api('GET', '/v1/secret/data/a/b')).json.data.data.v, 'two');
  t.is((await s.api('GET', '/v1/secret/data/a/b?version=1')).json.data.data.v, 'one');
  const { ciphertext } = (await s.api('POST', '/v1/transit/encrypt/k', { plaintext: Buffer.from('hi').toString('base64') })).json.data;
  t.is((await s.api('DELETE', '/v1/secret/data/a/b')).status, 204);
  t.like((await s.api('GET', '/v1/secret/data/a/b')).json, { code: 'not_found' });

  await s.server.close();
  await s.restart();
  // The mount table and the engines' storage are on disk; the engines are verified again as they start.
  t.is((await s.api('GET', '/v1/secret/data/a/b?version=1')).json.data.data.v, 'one');
  const decrypted = await s.api('POST', '/v1/transit/decrypt/k', { ciphertext });
  t.is(Buffer.from(decrypted.json.data.plaintext, 'base64').toString(), 'hi');
});

test('server: concurrent writes and a delete to one kv secret: each write gets its own version and every one is kept', async (t) => {
  const s = await startTestServer(t);
  await s.api('POST', '/v1/sys/mounts/secret', { plugin: 'kv', version: '1.0.0' });
  // Ten: every version is still kept (kv keeps the last ten), so each can be read back.
  const writers = Array.from({ length: 10 }, (_, writer) => writer);
  const [deleted, ...writes] = await Promise.all([
    s.api('DELETE', '/v1/secret/data/app/db'),
    ...writers.map((writer) => s.api('PUT', '/v1/secret/data/app/db', { data: { writer } })),
  ]);
  t.is(deleted?.status, 204);
  t.deepEqual(writes.map((w) => w.status), writers.map(() => 200));
  t.deepEqual(writes.map((w) => w.json.data.version).sort((a, b) => a - b), writers.map((writer) => writer + 1), 'distinct versions');
  let marked = 0;
  for (const [writer, write] of writes.entries()) {
    const read = await s.api('GET', `/v1/secret/data/app/db?version=${write.json.data.version}`);
    // The delete may have marked the one version that was latest when it ran; nothing else is lost.
    if (read.status === 404 && /deleted/.test(read.json.errors[0])) marked++;
    else t.is(read.json.data?.data.writer, writer, `version ${write.json.data.version}: ${JSON.stringify(read.json)}`);
  }
  t.true(marked <= 1);
});

test('server: concurrent first uses of a new transit key all encrypt under the one key that is kept', async (t) => {
  const s = await startTestServer(t);
  await s.api('POST', '/v1/sys/mounts/transit', { plugin: 'transit', version: '1.0.0' });
  const plaintexts = Array.from({ length: 20 }, (_, i) => Buffer.from(`payload-${i}`).toString('base64'));
  const encrypted = await Promise.all(plaintexts.map((plaintext) => s.api('POST', '/v1/transit/encrypt/fresh', { plaintext })));
  t.deepEqual(encrypted.map((e) => e.status), plaintexts.map(() => 200));
  // Restarted: the engine forgets the keys it held and decrypts with the one in storage.
  await s.server.close();
  await s.restart();
  for (const [i, e] of encrypted.entries()) {
    const decrypted = await s.api('POST', '/v1/transit/decrypt/fresh', { ciphertext: e.json.data.ciphertext });
    t.is(decrypted.json.data?.plaintext, plaintexts[i], `ciphertext ${i}: ${JSON.stringify(decrypted.json)}`);
  }
});

test('server: each mount sees only its own storage', async (t) => {
  const s = await startTestServer(t);
  await s.api('POST', '/v1/sys/mounts/one', { plugin: 'kv', version: '1.0.0' });
  await s.api('POST', '/v1/sys/mounts/two', { plugin: 'kv', version: '1.0.0' });
  await s.api('PUT', '/v1/one/data/x', { data: { owner: 'one' } });
  t.is((await s.api('GET', '/v1/two/data/x')).status, 404);
  // A path that tries to climb out of the mount is refused by the engine, and the view has no way out anyway.
  t.is((await s.api('GET', '/v1/two/data/..%2F..%2Fone%2Fdata%2Fx')).status, 404);
  t.is((await s.api('GET', '/v1/one/data/x')).json.data.data.owner, 'one');
  // Unmounting takes the data along: a new mount at the same path starts empty.
  t.is((await s.api('DELETE', '/v1/sys/mounts/one')).status, 204);
  await s.api('POST', '/v1/sys/mounts/one', { plugin: 'kv', version: '1.0.0' });
  t.is((await s.api('GET', '/v1/one/data/x')).status, 404);
});

test('server: concurrent requests during a reload to a newer signed version all succeed', async (t) => {
  const s = await startTestServer(t);
  await s.api('POST', '/v1/sys/mounts/secret', { plugin: 'kv', version: '1.0.0' });
  await s.api('PUT', '/v1/secret/data/k', { data: { v: 1 } });
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const clients = Array.from({ length: 16 }, async () => {
    while (running) {
      const r = await s.api('GET', '/v1/secret/data/k');
      if (r.status === 200) ok++;
      else failures.push(`${r.status} ${JSON.stringify(r.json)}`);
    }
  });
  const reloaded = await s.api('POST', '/v1/sys/plugins/reload/secret', { version: '1.1.0' });
  const afterReload = ok;
  while (ok < afterReload + 50) await new Promise((resolve) => setTimeout(resolve, 20));
  running = false;
  await Promise.all(clients);
  t.is(reloaded.status, 200, JSON.stringify(reloaded.json));
  t.deepEqual(failures, []);
  t.is((await s.api('GET', '/v1/secret/info')).json.data.version, '1.1.0');
  const listed = (await s.api('GET', '/v1/sys/plugins')).json.data.mounts[0];
  t.like(listed, { path: 'secret', version: '1.1.0', entry: 'kv-1.1.0', state: 'running' });
  // The operator sees when the release stops being accepted: no engine starts after it, restarts included.
  t.regex(String(listed?.manifestExpires), /^\d{4}-\d\d-\d\dT.*Z$/);
});

test('server: writes to one kv secret during reloads each get their own version: the old and the new engine never both write version N', async (t) => {
  const s = await startTestServer(t);
  await s.api('POST', '/v1/sys/mounts/secret', { plugin: 'kv', version: '1.0.0' });
  await s.api('POST', '/v1/sys/mounts/transit', { plugin: 'transit', version: '1.0.0' });
  let running = true;
  const versions: number[] = [];
  const ciphertexts: { key: string; ciphertext: string }[] = [];
  const failures: string[] = [];
  // Each writer's writes queue in the old engine while the new one already takes the next ones.
  const writers = Array.from({ length: 16 }, async (_, writer) => {
    for (let i = 0; running; i++) {
      const r = await s.api('PUT', '/v1/secret/data/k', { data: { writer, i } });
      if (r.status === 200) versions.push(r.json.data.version as number);
      else failures.push(`${r.status} ${JSON.stringify(r.json)}`);
    }
  });
  // First uses of new transit keys, each name used by several requests at once.
  let uses = 0;
  const encrypters = Array.from({ length: 8 }, async () => {
    while (running) {
      const key = `k${Math.floor(uses++ / 4)}`;
      const r = await s.api('POST', `/v1/transit/encrypt/${key}`, { plaintext: 'aGVsbG8=' });
      if (r.status === 200) ciphertexts.push({ key, ciphertext: r.json.data.ciphertext as string });
      else failures.push(`${r.status} ${JSON.stringify(r.json)}`);
    }
  });
  for (const version of ['1.1.0', '1.0.0', '1.1.0']) {
    t.is((await s.api('POST', '/v1/sys/plugins/reload/secret', { version })).status, 200);
    t.is((await s.api('POST', '/v1/sys/plugins/reload/transit')).status, 200);
  }
  running = false;
  await Promise.all([...writers, ...encrypters]);
  t.deepEqual(failures, []);
  // Two writes acknowledged with one version: one of them was overwritten, an acknowledged write lost.
  const twice = versions.filter((version, i) => versions.indexOf(version) !== i);
  t.deepEqual(twice, [], `${versions.length} writes, versions acknowledged twice: ${twice.length}`);
  t.is((await s.api('GET', '/v1/secret/data/k')).json.data.metadata.version, Math.max(...versions));
  for (const { key, ciphertext } of ciphertexts) t.is((await s.api('POST', `/v1/transit/decrypt/${key}`, { ciphertext })).status, 200, key);
});

test('server: a crashed engine fails the request with its last stderr line, and is restarted', async (t) => {
  const s = await startTestServer(t);
  await s.api('POST', '/v1/sys/mounts/bad', { plugin: 'bad', version: '1.0.0' });
  const crashed = await s.api('GET', '/v1/bad/crash');
  t.is(crashed.status, 503);
  t.is(crashed.json.code, 'plugin_crashed');
  t.regex(crashed.json.errors[0], /crashing on purpose/);
  let mount;
  for (let i = 0; i < 100; i++) {
    mount = (await s.api('GET', '/v1/sys/plugins')).json.data.mounts[0];
    if (mount.restarts === 1 && mount.state === 'running') break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.like(mount, { restarts: 1, state: 'running' });
  t.is((await s.api('GET', '/v1/bad/fine')).json.data.path, 'fine');
});

test('server: a mount whose engine is down (its release broken) comes back with a reload once the release is fixed, and its errors say so', async (t) => {
  const s = await startTestServer(t);
  await s.api('POST', '/v1/sys/mounts/bad', { plugin: 'bad', version: '1.0.0' });
  // Break the release (as a wrong rollback or a damaged file would), then crash the engine: every restart is refused.
  const file = s.files['bad-1.0.0'] as string;
  const good = await readFile(file);
  await appendFile(file, '\n');
  t.is((await s.api('GET', '/v1/bad/crash')).status, 503);
  let down;
  for (let i = 0; i < 300 && down?.code !== 'plugin_down'; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    down = (await s.api('GET', '/v1/bad/fine')).json;
  }
  t.is(down?.code, 'plugin_down', JSON.stringify(down));
  // What the operator can do, in the server's terms: not the library's reset().
  t.regex(down?.errors[0], /SIZE_MISMATCH|bytes/);
  t.regex(down?.errors[0], /POST \/v1\/sys\/plugins\/reload\/bad/);
  t.true(s.lines.some((line) => /engine at bad\/ is DOWN .*POST \/v1\/sys\/plugins\/reload\/bad/.test(line)), s.lines.join('\n'));
  // A reload while the release is still broken is refused and says why; fixed, it brings the mount back.
  const refused = await s.api('POST', '/v1/sys/plugins/reload/bad', {});
  t.like(refused, { status: 400, json: { code: 'plugin_refused' } });
  t.regex(refused.json.errors[0], /SIZE_MISMATCH/);
  await writeFile(file, good);
  const reloaded = await s.api('POST', '/v1/sys/plugins/reload/bad', {});
  t.is(reloaded.status, 200, JSON.stringify(reloaded.json));
  t.like(reloaded.json.data, { state: 'running' });
  t.is((await s.api('GET', '/v1/bad/fine')).json.data.path, 'fine');
});

test('server: a tampered engine never runs; an unsigned release and an unknown version are refused at mount', async (t) => {
  const s = await startTestServer(t);
  const marker = join(s.root, 'tampered-engine-ran');
  const file = s.files['kv-1.1.0'] as string;
  // Attack: the engine file is replaced after signing by one of the same size that leaves a mark.
  const { size } = await stat(file);
  const payload = `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran');`;
  await writeFile(file, payload + ' '.repeat(size - payload.length));
  const refused = await s.api('POST', '/v1/sys/mounts/secret', { plugin: 'kv', version: '1.1.0' });
  t.is(refused.status, 400);
  t.is(refused.json.code, 'plugin_refused');
  t.regex(refused.json.errors[0], /DIGEST_MISMATCH/);
  t.false(existsSync(marker), 'the tampered engine never ran');
  t.is((await s.api('GET', '/v1/secret/data/x')).json.code, 'no_such_mount');

  // A reload to the tampered version leaves the running engine in place and says why.
  await s.api('POST', '/v1/sys/mounts/secret', { plugin: 'kv', version: '1.0.0' });
  const reload = await s.api('POST', '/v1/sys/plugins/reload/secret', { version: '1.1.0' });
  t.like(reload, { status: 400, json: { code: 'plugin_refused' } });
  t.like((await s.api('GET', '/v1/sys/plugins')).json.data.mounts[0], { version: '1.0.0', state: 'running' });

  t.regex((await s.api('POST', '/v1/sys/mounts/other', { plugin: 'kv', version: '9.9.9' })).json.errors[0], /PLUGIN_NOT_IN_MANIFEST/);
  await writeFile(`${join(s.root, 'release', 'manifest.json')}.minisig`, '');
  const unsigned = await s.api('POST', '/v1/sys/mounts/third', { plugin: 'transit', version: '1.0.0' });
  t.like(unsigned, { status: 400, json: { code: 'plugin_refused' } });
  t.regex(unsigned.json.errors[0], /SIGNATURE|THRESHOLD/);
});

test('server: a hanging engine hits its deadline and the server stays up', async (t) => {
  const s = await startTestServer(t, { limits: { callTimeoutMs: 1000 } });
  await s.api('POST', '/v1/sys/mounts/bad', { plugin: 'bad', version: '1.0.0' });
  const hung = await s.api('GET', '/v1/bad/hang');
  t.is(hung.status, 504);
  t.is(hung.json.code, 'plugin_timeout');
  t.is((await s.api('GET', '/v1/sys/health', undefined, { token: null })).status, 200);
  t.is((await s.api('GET', '/v1/bad/fine')).status, 200);
});

test('server: bad tokens, oversized, malformed and misrouted requests get clear JSON errors', async (t) => {
  const s = await startTestServer(t, { limits: { maxBodyBytes: 1024 } });
  await s.api('POST', '/v1/sys/mounts/secret', { plugin: 'kv', version: '1.0.0' });
  t.like(await s.api('GET', '/v1/secret/data/x', undefined, { token: null }), { status: 403, json: { code: 'permission_denied' } });
  t.like(await s.api('GET', '/v1/secret/data/x', undefined, { token: 'gh.wrong' }), { status: 403, json: { code: 'permission_denied' } });
  t.like(await s.api('GET', '/v1/sys/plugins', undefined, { token: `${s.token}x` }), { status: 403 });
  t.like(await s.api('PUT', '/v1/secret/data/x', { data: { v: 'x'.repeat(2000) } }), { status: 413, json: { code: 'body_too_large' } });
  t.like(await s.api('PUT', '/v1/secret/data/x', undefined, { raw: '{"data": ' }), { status: 400, json: { code: 'invalid_json' } });
  t.like(await s.api('PUT', '/v1/secret/data/x', undefined, { raw: '[1,2]' }), { status: 400, json: { code: 'invalid_json' } });
  t.like(await s.api('PUT', '/v1/secret/data/x', { data: 'not an object' }), { status: 400, json: { code: 'invalid_request' } });
  t.like(await s.api('GET', '/v1/nowhere/data/x'), { status: 404, json: { code: 'no_such_mount' } });
  t.like(await s.api('POST', '/v1/sys/mounts/sys', { plugin: 'kv', version: '1.0.0' }), { status: 400, json: { code: 'invalid_mount_path' } });
  t.like(await s.api('POST', '/v1/sys/mounts/x', { plugin: 'kv', version: 'latest' }), { status: 400, json: { code: 'invalid_request' } });
  t.like(await s.api('PATCH', '/v1/secret/data/x'), { status: 405, json: { code: 'method_not_allowed' } });
  const error = await s.api('GET', '/v1/secret/data/x', undefined, { token: null });
  t.true(Array.isArray(error.json.errors) && typeof error.json.errors[0] === 'string');
});

test('server: the audit log records every request with values HMACd: the secret is not in it', async (t) => {
  const s = await startTestServer(t);
  await s.api('POST', '/v1/sys/mounts/secret', { plugin: 'kv', version: '1.0.0' });
  await s.api('POST', '/v1/sys/mounts/transit', { plugin: 'transit', version: '1.0.0' });
  await s.api('PUT', '/v1/secret/data/db', { data: { password: SECRET } });
  t.is((await s.api('GET', '/v1/secret/data/db')).json.data.data.password, SECRET);
  await s.api('POST', '/v1/transit/encrypt/k', { plaintext: Buffer.from(SECRET).toString('base64') });
  await s.server.close();
  const path = join(s.home, 'audit.jsonl');
  const log = await readFile(path, 'utf8');
  for (const needle of [SECRET, Buffer.from(SECRET).toString('base64'), s.token]) t.false(log.includes(needle), `${needle.slice(0, 8)}… is in the log`);
  t.like(await verifyAuditLog(path), { ok: true });
  const requests = log
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { type: string; action?: string; fields?: Record<string, unknown> })
    .filter((r) => r.type === 'host' && r.action === 'request');
  t.is(requests.length, 5);
  t.true(requests.every((r) => typeof r.fields?.token === 'string' && (r.fields.token as string).startsWith('hmac-sha256:')));
  t.true(log.includes('"type":"supervisor"') && log.includes('"type":"verification"'));
});

test('server: an engine flooding its stderr does not grow the server memory past a bound', async (t) => {
  const s = await startTestServer(t);
  await s.api('POST', '/v1/sys/mounts/bad', { plugin: 'bad', version: '1.0.0' });
  const before = process.memoryUsage().rss;
  for (let i = 0; i < 3; i++) t.is((await s.api('GET', '/v1/bad/flood')).status, 200);
  const grown = process.memoryUsage().rss - before;
  t.log(`rss grew ${(grown / 1024 / 1024).toFixed(1)} MiB over 3 s of stderr flood`);
  t.true(grown < 64 * 1024 * 1024, `rss grew ${grown} bytes`);
  t.is((await s.api('GET', '/v1/sys/health', undefined, { token: null })).status, 200);
});

const MAIN = fileURLToPath(new URL('../../examples/secrets-server/main.js', import.meta.url));

/** `serve` in a child under util-linux's prlimit: a write past `fileSizeLimit` bytes fails (EFBIG), as on a full disk. */
async function serveWithFileSizeLimit(t: ExecutionContext, home: string, fileSizeLimit: number): Promise<{ url: string; output: string[] }> {
  const child = spawn('/usr/bin/prlimit', [`--fsize=${fileSizeLimit}`, process.execPath, MAIN, 'serve', '--home', home], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  const output: string[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => output.push(line));
  createInterface({ input: child.stderr }).on('line', (line) => output.push(line));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', () => {
      const listening = output.map((line) => /^listening on (\S+)$/.exec(line)?.[1]).find((found) => found !== undefined);
      if (listening !== undefined) resolve(listening);
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${output.join('\n')}`)));
  });
  return { url, output };
}

test('server: once its audit log cannot record, the server answers every request 503 audit_failed, health included, and tells the operator once what to do', async (t) => {
  const s = await startTestServer(t);
  await s.server.close();
  const { size } = await stat(join(s.home, 'audit.jsonl'));
  // Room for the reopening record and a few requests' records; then the "disk" is full.
  const child = await serveWithFileSizeLimit(t, s.home, size + 4096);
  const api = async (path: string, token: string | null = s.token) => {
    const response = await fetch(child.url + path, { headers: token === null ? {} : { 'x-vault-token': token } });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  };
  let reply = await api('/v1/sys/plugins');
  for (let i = 0; i < 100 && reply.status === 200; i++) reply = await api('/v1/sys/plugins');
  // The request whose record could not be written is not answered as if it had been.
  t.like(reply, { status: 503, json: { code: 'audit_failed' } });
  t.like(await api('/v1/sys/plugins'), { status: 503, json: { code: 'audit_failed' } });
  t.like(await api('/v1/secret/data/x', null), { status: 503, json: { code: 'audit_failed' } });
  // Monitoring and load balancers must see it too: a healthy answer would keep traffic coming to a server that serves none.
  t.like(await api('/v1/sys/health', null), { status: 503, json: { code: 'audit_failed' } });
  const told = child.output.filter((line) => line.includes('the audit log cannot record'));
  t.is(told.length, 1, child.output.join('\n'));
  t.regex(told[0] ?? '', /EFBIG.*restart the server/);
});

test('server: a server whose audit log ends in a torn line refuses to start, says how to recover, and starts once the log is moved aside', async (t) => {
  const s = await startTestServer(t);
  await s.server.close();
  const log = join(s.home, 'audit.jsonl');
  // What a write cut short by a full disk leaves.
  await appendFile(log, '{"seq":');
  const refused = await t.throwsAsync(s.restart(), { message: /last line has no newline.*gatehouse audit verify .*audit\.jsonl.*move it aside/s });
  // The advice once: the library's, and what the server adds (it does not start without the log, and begins a new one).
  t.is(refused?.message.match(/move it aside/g)?.length, 1, refused?.message);
  t.regex(refused?.message ?? '', /the server records every request there: started again once it is moved aside, it begins a new audit log/);
  await rename(log, `${log}.torn`);
  await s.restart();
  t.is((await s.api('GET', '/v1/sys/health', undefined, { token: null })).status, 200);
});

test('server: the audit record of a request holds its query string, each value HMACd', async (t) => {
  const s = await startTestServer(t);
  await s.api('POST', '/v1/sys/mounts/secret', { plugin: 'kv', version: '1.0.0' });
  await s.api('PUT', '/v1/secret/data/db', { data: { v: 1 } });
  await s.api('PUT', '/v1/secret/data/db', { data: { v: 2 } });
  t.is((await s.api('GET', '/v1/secret/data/db')).json.data.data.v, 2);
  t.is((await s.api('GET', `/v1/secret/data/db?version=1&note=${SECRET}`)).json.data.data.v, 1);
  await s.server.close();
  const hasher = new AuditHasher(await readFile(join(s.home, 'audit-hmac.key')));
  const reads = (await auditedRequests(s.home)).filter((fields) => fields.method === 'GET' && fields.path === '/v1/secret/data/db');
  // A read of version 1 is told from a read of the latest; a value in a query may be a secret, so it is HMAC'd.
  t.deepEqual(reads.map((fields) => fields.query), [null, `version=${hasher.hash('1')}&note=${hasher.hash(SECRET)}`]);
  t.false((await readFile(join(s.home, 'audit.jsonl'), 'utf8')).includes(SECRET));
});

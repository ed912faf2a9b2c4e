// `npm run demo`: a narrated session with the secrets server, one plain line per step. It makes a
// throwaway home (release key, signed release of the engines, config) in a temporary directory, runs the
// server as a child process, talks to it over HTTP only, and leaves no process, socket or directory.
import { spawn } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, appendFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { generateKeyPair, verifyAuditLog, writeKeyPair } from 'gatehouse-plugins';
import { initHome, loadConfig } from './config.js';
import { buildRelease } from './release.js';

const say = (line: string): void => void process.stdout.write(`${line}\n`);
let failed = false;
const check = (ok: boolean, line: string): void => {
  say(`${ok ? 'ok  ' : 'FAIL'} ${line}`);
  if (!ok) failed = true;
};
const short = (hex: string | undefined) => (hex ?? '?').slice(0, 16);

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const SECRET = 'correct horse battery staple';
const CARD = '4111 1111 1111 1111';

const root = await mkdtemp(join(tmpdir(), 'gatehouse-demo-'));
// Searchable, not listable: engines run as nobody when the demo runs as root, and must reach their
// socket directories under root/tmp (everything secret inside is 0700 or 0600).
await chmod(root, 0o711);
const home = join(root, 'home');
const serverTmp = join(root, 'tmp');
const pidsSeen = new Set<number>();
let server: ReturnType<typeof spawn> | undefined;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Engines killed as the server stops are reaped by init a moment later: wait for that, briefly. */
async function waitForEngines(): Promise<void> {
  for (let i = 0; i < 50 && [...pidsSeen].some(isAlive); i++) await new Promise((resolve) => setTimeout(resolve, 100));
}

try {
  // 1. A release key, and a release of the engines signed with it.
  const key = generateKeyPair();
  await mkdir(join(root, 'signing'), { mode: 0o700 });
  const { publicKeyPath } = await writeKeyPair(join(root, 'signing', 'release'), key);
  await mkdir(join(root, 'trusted'));
  await copyFile(publicKeyPath, join(root, 'trusted', 'release.pub'));
  const started = performance.now();
  const { manifestPath, files } = await buildRelease({
    outDir: join(root, 'release'),
    engines: [
      { engine: 'kv', version: '1.0.0' },
      { engine: 'kv', version: '1.1.0' },
      { engine: 'transit', version: '1.0.0' },
      { engine: 'transit', version: '1.1.0' },
    ],
    secretKey: key.secretKey,
    manifestVersion: 1,
  });
  say(`release: kv 1.0.0, kv 1.1.0, transit 1.0.0, transit 1.1.0 bundled and signed by key ${key.publicKey.keyId} (${(performance.now() - started).toFixed(0)} ms)`);
  const { rootToken } = await initHome({ home, release: { manifest: manifestPath, trustedKeysDir: join(root, 'trusted') }, port: 0 });
  say(`server home ${home}: config, audit HMAC key, root token stored only as its SHA-256`);

  // 2. The server, as a child process with an explicit (empty) environment.
  // Its temporary directory (engine sockets) is inside the throwaway root, so that the demo can show it empty at the end.
  // 0711: an engine run as another user must reach its own socket directory inside (it cannot list it).
  await mkdir(serverTmp, { mode: 0o711 });
  server = spawn(process.execPath, [MAIN, 'serve', '--home', home], { env: { TMPDIR: serverTmp }, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: server?.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      const match = /^listening on (\S+)$/.exec(line);
      if (match) resolve(match[1] as string);
      else say(`  server: ${line}`);
    });
    server?.once('exit', (code) => reject(new Error(`the server exited (${code}) before listening`)));
  });
  say(`server listening on ${url} (loopback only)`);

  const api = async (method: string, path: string, body?: unknown, token = rootToken) => {
    const response = await fetch(url + path, {
      method,
      headers: { 'x-vault-token': token, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the server's JSON, read field by field and checked by each step
    return { status: response.status, json: (text ? JSON.parse(text) : {}) as Record<string, any> };
  };
  const plugins = async () => (await api('GET', '/v1/sys/plugins')).json.data.mounts as { path: string; pid: number; restarts: number; state: string; sha256: string }[];

  // 3. Mount the engines: each verified against the signed release, sealed, sandboxed, mTLS pinned.
  for (const [path, plugin] of [
    ['secret', 'kv'],
    ['transit', 'transit'],
  ] as const) {
    const t0 = performance.now();
    const mounted = await api('POST', `/v1/sys/mounts/${path}`, { plugin, version: '1.0.0' });
    const data = mounted.json.data ?? {};
    check(
      mounted.status === 200,
      `mounted ${plugin} 1.0.0 at ${path}/ in ${(performance.now() - t0).toFixed(0)} ms: sha256 ${short(data.sha256)}… signed by key ${data.keyIds?.join(',')}, sealed copy, empty environment, pid ${data.pid}`,
    );
    pidsSeen.add(data.pid);
  }

  // 4. Write and read a secret; encrypt and decrypt.
  const written = await api('PUT', '/v1/secret/data/app/db', { data: { password: SECRET } });
  check(written.status === 200, `wrote secret/data/app/db (version ${written.json.data?.version})`);
  const read = await api('GET', '/v1/secret/data/app/db');
  check(read.json.data?.data?.password === SECRET, `read it back: password has ${String(read.json.data?.data?.password ?? '').length} characters, equal to what was written`);
  const encrypted = await api('POST', '/v1/transit/encrypt/payments', { plaintext: Buffer.from(CARD).toString('base64') });
  const ciphertext = String(encrypted.json.data?.ciphertext);
  check(encrypted.status === 200 && ciphertext.startsWith('vault:v1:'), `transit encrypted a card number with key "payments" (held by the plugin): ${ciphertext.slice(0, 24)}…`);
  const decrypted = await api('POST', '/v1/transit/decrypt/payments', { ciphertext });
  check(Buffer.from(String(decrypted.json.data?.plaintext), 'base64').toString() === CARD, 'decrypted it back to the same card number');

  // 5. A crash: the kv engine is killed; the supervisor restarts it and the secret is still there.
  const before = (await plugins()).find((p) => p.path === 'secret');
  process.kill(before?.pid as number, 'SIGKILL');
  say(`killed the kv engine (pid ${before?.pid}) with SIGKILL`);
  let after = before;
  for (let i = 0; i < 100 && (after?.restarts ?? 0) < 1; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    after = (await plugins()).find((p) => p.path === 'secret');
  }
  pidsSeen.add(after?.pid as number);
  const reread = await api('GET', '/v1/secret/data/app/db');
  check(after?.restarts === 1 && reread.json.data?.data?.password === SECRET, `restarted automatically (pid ${after?.pid}, verified again); the secret survived`);

  // 6. A tampered engine is refused at mount, with the reason.
  await appendFile(files['transit-1.1.0'] as string, '\n// a backdoor\n');
  const tampered = await api('POST', '/v1/sys/mounts/transit2', { plugin: 'transit', version: '1.1.0' });
  check(tampered.status === 400 && tampered.json.code === 'plugin_refused', `tampered transit 1.1.0 refused at mount: ${tampered.json.errors?.[0]}`);

  // 7. A reload to kv 1.1.0 while 16 clients keep reading: none may fail.
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const clients = Array.from({ length: 16 }, async () => {
    while (running) {
      const response = await api('GET', '/v1/secret/data/app/db');
      if (response.status === 200) ok++;
      else failures.push(`${response.status} ${response.json.code}`);
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 200));
  const reloaded = await api('POST', '/v1/sys/plugins/reload/secret', { version: '1.1.0' });
  await new Promise((resolve) => setTimeout(resolve, 200));
  running = false;
  await Promise.all(clients);
  pidsSeen.add(reloaded.json.data?.pid);
  const info = await api('GET', '/v1/secret/info');
  check(
    reloaded.status === 200 && failures.length === 0 && info.json.data?.version === '1.1.0',
    `reloaded secret/ to kv ${info.json.data?.version} (sha256 ${short(reloaded.json.data?.sha256)}…) during ${ok} reads by 16 clients: ${failures.length} failed`,
  );

  // 8. Stop the server; verify the audit chain and that no secret is in it.
  const bad = await api('GET', '/v1/secret/data/app/db', undefined, 'gh.not-the-token');
  check(bad.status === 403, `a wrong token gets ${bad.status} ${bad.json.code}`);
  server.kill('SIGTERM');
  await new Promise((resolve) => server?.once('exit', resolve));
  server = undefined;
  say('server stopped');
  const auditPath = join(home, 'audit.jsonl');
  const verification = await verifyAuditLog(auditPath);
  check(verification.ok, `audit verify: ${verification.ok ? `ok, ${verification.records} hash-chained records` : `broken at line ${verification.line}: ${verification.reason}`}`);
  const log = await readFile(auditPath, 'utf8');
  const needles = [SECRET, CARD, Buffer.from(CARD).toString('base64'), rootToken];
  check(!needles.some((needle) => log.includes(needle)), 'the audit log holds no secret value, card number or token in clear (HMAC-SHA256 only)');
} catch (error) {
  failed = true;
  say(`FAIL ${error instanceof Error ? error.message : String(error)}`);
} finally {
  if (server) {
    server.kill('SIGTERM');
    await new Promise((resolve) => server?.once('exit', resolve));
  }
  await waitForEngines();
  const sockets = await readdir(serverTmp).catch(() => []);
  // The server removes its seal directory (under the library's seal root) once empty, when it stops.
  const sealDir = await loadConfig(home).then((config) => config.sealDir, () => undefined);
  const sealed = sealDir === undefined ? [] : await readdir(sealDir).catch(() => []);
  const sealDirLeft = sealDir !== undefined && (await readdir(sealDir).then(() => true, () => false));
  check(sockets.length === 0 && sealed.length === 0 && !sealDirLeft, `no socket directory and no sealed copy left (${[...sockets, ...sealed].join(", ") || "none found"})`);
  await rm(root, { recursive: true, force: true });
}

const alive = [...pidsSeen].filter(isAlive);
const rootLeft = await readdir(root).then(() => true, () => false);
check(alive.length === 0 && !rootLeft, `nothing left behind: ${alive.length} engine processes, temporary directory ${rootLeft ? 'still there' : 'removed'}`);
process.exitCode = failed ? 1 : 0;

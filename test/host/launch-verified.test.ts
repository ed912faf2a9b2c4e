// A host runs only what K trusted keys signed, and runs the sealed copy of it.
import { appendFile, chmod, copyFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { isGatehouseError, launchVerified, openAuditLog, type GatehouseError } from '../../src/index.js';
import { createManifest, formatManifest, generateKeyPair, signManifest } from '../../src/verify/index.js';
import type { MinisignPublicKey } from '../../src/verify/index.js';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { sealRootDir, tempDir, writeFileWithMode } from '../discover/temp-dir.js';
import { waitUntil } from '../helpers/process.js';
import { goTest } from '../interop/go-binaries.js';
import { CODE_LOADING_ENV_NAMES } from '../../src/verify/code-loading-env.js';
import { requireTool } from '../hostile/requires.js';
import { recordingLogger } from '../helpers/recording-logger.js';

const DAY_MS = 86_400_000;
const execFileAsync = promisify(execFile);
const NOBODY = 65534;

/** A plugin directory holding the given files, a manifest of them, and its signature by a fresh key. */
async function signedPluginDir(t: ExecutionContext, place: (dir: string) => Promise<void>) {
  const dir = await tempDir(t);
  await place(dir);
  const manifest = await createManifest(dir, { version: 1, expires: new Date(Date.now() + DAY_MS) });
  const manifestPath = join(dir, 'manifest.json');
  await writeFile(manifestPath, formatManifest(manifest));
  const keys = generateKeyPair();
  await writeFile(`${manifestPath}.minisig`, signManifest(await readFile(manifestPath), keys.secretKey));
  const auditPath = join(await tempDir(t), 'audit.jsonl');
  const audit = await openAuditLog(auditPath);
  // Closed by every test's end too, not only by those that read it: an open log's descriptor would leak.
  t.teardown(() => audit.close());
  const records = async () => {
    await audit.close();
    return (await readFile(auditPath, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  };
  return { dir, manifestPath, trustedKeys: [keys.publicKey] as MinisignPublicKey[], audit, records };
}

goTest('launchVerified: a signed Go plugin runs from its sealed copy, which is removed after it exits', async (t, go) => {
  const { manifestPath, trustedKeys, audit, records } = await signedPluginDir(t, async (dir) => {
    await copyFile(go.kvplugin, join(dir, 'kv'));
    await chmod(join(dir, 'kv'), 0o755);
  });
  const plugin = await launchVerified({ manifestPath, plugin: 'kv', policy: { trustedKeys }, cookie: KV_COOKIE, audit });
  const kv = plugin.client(loadKVService());
  await kv.Put({ key: 'signed', value: Buffer.from('yes') });
  t.is((await kv.Get({ key: 'signed' })).value.toString(), 'yes');

  await plugin.kill();
  const logged = await records();
  const sealedCommand = (logged.find((r) => r.type === 'launch')?.argv as string[] | undefined)?.[0] ?? '';
  t.false(sealedCommand.startsWith(dirname(manifestPath)), 'the original file never runs');
  const record = logged.find((r) => r.type === 'verification');
  t.like(record, { result: 'accepted', keyIds: [trustedKeys[0]?.keyId] });
  // The host has what was verified without reading its audit log: the record's own facts.
  t.deepEqual(plugin.verification, {
    sha256: record?.sha256,
    keyIds: [trustedKeys[0]?.keyId],
    manifestVersion: record?.manifestVersion,
    manifestSha256: record?.manifestSha256,
    manifestExpires: record?.manifestExpires,
    files: record?.files,
  });
  t.regex(String(record?.manifestExpires), /^\d{4}-\d\d-\d\dT/, 'when the manifest stops being accepted');
  t.true(await waitUntil(() => !existsSync(sealedCommand), 5000), 'the sealed copy is removed after exit');
});

// The copy is removed once the plugin exits, but a host that exits or is signalled while the plugin runs
// never sees that: its exit hook kills the plugin, and must remove the copy too.
goTest('launchVerified: the sealed copy goes when the host exits or is signalled with the plugin still running', async (t, go) => {
  const hostScript = fileURLToPath(new URL('../fixtures/verified-host-that-dies.js', import.meta.url));
  for (const ending of ['exit', 'SIGTERM']) {
    const sealParent = await sealRootDir(t);
    const { stdout } = await execFileAsync(process.execPath, [hostScript, ending, go.kvplugin, await tempDir(t), sealParent], { timeout: 20_000 }).catch(
      (error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }),
    );
    const { pid } = JSON.parse(stdout.trim()) as { pid: number };
    t.true(pid > 0, `the plugin was launched before the host ended by ${ending}`);
    t.deepEqual(await readdir(sealParent), [], `a sealed copy was left behind after ${ending}`);
  }
});

// Issue 11 item 7: verified launch and run-as compose; the run-as user reads and runs the copy, only the host writes it.
goTest('launchVerified with user and group: the plugin runs as that user from a sealed copy it cannot write', async (t, go) => {
  if (process.geteuid?.() !== 0) {
    t.log('skipped: running a plugin as another user needs root');
    t.pass();
    return;
  }
  const { manifestPath, trustedKeys, audit, records } = await signedPluginDir(t, async (dir) => {
    await copyFile(go.kvplugin, join(dir, 'kv'));
    await chmod(join(dir, 'kv'), 0o755);
  });
  const plugin = await launchVerified({ manifestPath, plugin: 'kv', policy: { trustedKeys }, cookie: KV_COOKIE, audit, user: NOBODY, group: NOBODY });
  try {
    const kv = plugin.client(loadKVService());
    await kv.Put({ key: 'as', value: Buffer.from('nobody') });
    t.is((await kv.Get({ key: 'as' })).value.toString(), 'nobody');
    t.is((await stat(`/proc/${plugin.pid}`)).uid, NOBODY);
    const sealedCommand = (await readFile(`/proc/${plugin.pid}/cmdline`, 'utf8')).split('\0')[0] ?? '';
    const copy = await stat(sealedCommand);
    t.is(copy.uid, 0, 'the copy stays the host\'s');
    t.is(copy.gid, NOBODY);
    t.is(copy.mode & 0o777, 0o550, 'the run-as group may read and run it, nobody may write it');
    t.is((await stat(dirname(dirname(sealedCommand)))).mode & 0o777, 0o750);
  } finally {
    await plugin.kill();
  }
  t.like((await records()).find((r) => r.type === 'verification'), { result: 'accepted' });
});

test('launchVerified: a plugin changed after signing is refused, nothing runs, and the refusal is audited', async (t) => {
  const marker = join(await tempDir(t), 'ran');
  const { dir, manifestPath, trustedKeys, audit, records } = await signedPluginDir(t, async (pluginDir) => {
    await writeFileWithMode(pluginDir, 'plugin', `#!/bin/sh\ntouch ${marker}\n`, 0o755);
  });
  // Attack: the file in the plugin directory is replaced after the release was signed.
  await appendFile(join(dir, 'plugin'), '# tampered\n');
  const error = await t.throwsAsync(
    launchVerified({ manifestPath, plugin: 'plugin', policy: { trustedKeys }, cookie: KV_COOKIE, audit }),
  );
  t.true(isGatehouseError(error, 'DIGEST_MISMATCH') || isGatehouseError(error, 'SIZE_MISMATCH'), String(error));
  t.regex(error?.message ?? '', /the file changed after signing .* so it does not run; reinstall the signed release/, 'it says what happened and what to do');
  t.false(existsSync(marker), 'the tampered plugin never ran');
  const refusal = (await records()).find((r) => r.type === 'refusal');
  t.is(refusal?.code, (error as GatehouseError).code);
  // What an auditor's tooling compares, as fields, not only inside the message.
  t.like(refusal, { file: join(dir, 'plugin'), manifestPath });
  t.regex(String(refusal?.found), /^(SHA-256 [0-9a-f]{64}|\d+ bytes)$/);
  t.regex(String(refusal?.signed), /^([0-9a-f]{64}|\d+ bytes)$/);
});

test('launchVerified: a manifest signed by an untrusted key is refused', async (t) => {
  const { manifestPath } = await signedPluginDir(t, async (dir) => {
    await writeFileWithMode(dir, 'plugin', '#!/bin/sh\nexit 0\n', 0o755);
  });
  const error = await t.throwsAsync(
    launchVerified({ manifestPath, plugin: 'plugin', policy: { trustedKeys: [generateKeyPair().publicKey] }, cookie: KV_COOKIE }),
  );
  t.true(isGatehouseError(error), String(error));
  t.regex((error as GatehouseError).code, /SIGNATURE_UNTRUSTED|THRESHOLD_NOT_MET/);
});

test('launchVerified: the verification record names the manifest (version, SHA-256) and the digest of every file that runs', async (t) => {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'main.sh', '. "$(dirname "$0")/lib/helper.sh"\n', 0o644);
  await writeFileWithMode(dir, 'lib/helper.sh', 'exit 3\n', 0o644);
  await writeFileWithMode(dir, 'bin/sh', await readFile('/bin/sh'), 0o755);
  const digest = async (name: string) => {
    const bytes = await readFile(join(dir, name));
    return { path: name, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
  };
  const [main, helper, shell] = await Promise.all([digest('main.sh'), digest('lib/helper.sh'), digest('bin/sh')]);
  const manifestText = formatManifest({
    schema: 'gatehouse.manifest/v1',
    version: 7,
    expires: new Date(Date.now() + DAY_MS).toISOString(),
    plugins: [
      { name: 'pinned', ...main, interpreter: shell, files: [helper] },
      { name: 'system', ...main, interpreter: { path: '/bin/sh' }, files: [helper] },
    ],
  });
  const manifestPath = join(dir, 'manifest.json');
  await writeFile(manifestPath, manifestText);
  const keys = generateKeyPair();
  await writeFile(`${manifestPath}.minisig`, signManifest(Buffer.from(manifestText), keys.secretKey));
  const auditPath = join(await tempDir(t), 'audit.jsonl');
  const audit = await openAuditLog(auditPath);
  for (const plugin of ['pinned', 'system']) {
    // The script exits at once: only the record written before the launch matters here.
    await t.throwsAsync(launchVerified({ manifestPath, plugin, policy: { trustedKeys: [keys.publicKey] }, cookie: KV_COOKIE, audit, startTimeoutMs: 5000 }));
  }
  await audit.close();
  const logged = (await readFile(auditPath, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  const [pinned, system] = logged.filter((r) => r.type === 'verification');
  const manifest = { manifestVersion: 7, manifestSha256: createHash('sha256').update(manifestText).digest('hex'), result: 'accepted' };
  const file = ({ path, sha256 }: { path: string; sha256: string }, role: string) => ({ path, sha256, role });
  t.like(pinned, { ...manifest, plugin: 'pinned', sha256: main.sha256 });
  t.deepEqual(pinned?.files, [file(main, 'plugin'), file(helper, 'file'), file(shell, 'interpreter')]);
  t.like(system, { ...manifest, plugin: 'system' });
  // A system interpreter the manifest does not pin has no verified digest: said so, not invented.
  t.deepEqual(system?.files, [file(main, 'plugin'), file(helper, 'file'), { path: '/bin/sh', sha256: null, role: 'interpreter' }]);
});

test('launchVerified: the discovery record of docs/audit.md comes before the verdict, and a sealed plugin that fails names its error line', async (t) => {
  const { dir, manifestPath, trustedKeys, audit, records } = await signedPluginDir(t, async (pluginDir) => {
    // What a crashing Node plugin prints: the error, then a footer that says nothing about it.
    await writeFileWithMode(pluginDir, 'plugin', '#!/bin/sh\necho "Error: no configuration" >&2\necho "    at main (/p/plugin.js:3:7)" >&2\necho "Node.js v20.20.2" >&2\nexit 1\n', 0o755);
  });
  const error = await t.throwsAsync(launchVerified({ manifestPath, plugin: 'plugin', policy: { trustedKeys }, cookie: KV_COOKIE, audit }));
  t.true(isGatehouseError(error, 'PLUGIN_EXITED'), String(error));
  t.regex(error?.message ?? '', /the plugin said: "Error: no configuration"/);
  const logged = await records();
  const types = logged.map((record) => record.type).filter((type) => type !== 'audit-log-opened');
  t.deepEqual(types.slice(0, 3), ['discovery', 'verification', 'launch']);
  t.like(logged.find((record) => record.type === 'discovery'), { plugin: 'plugin', path: join(dir, 'plugin') });
});

// A sandbox binds the command alone; an interpreted plugin's sealed script (and a package's modules and
// containment hook) sit beside it in the sealed directory, which a sandboxed launch could not see.
test('launchVerified with a sandbox: an interpreted plugin runs its sealed script inside the sandbox', async (t) => {
  if (!requireTool(t, 'bwrap')) return;
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'main.sh', 'echo "Error: the sealed script ran" >&2\nexit 1\n', 0o644);
  const bytes = await readFile(join(dir, 'main.sh'));
  const manifestText = formatManifest({
    schema: 'gatehouse.manifest/v1',
    version: 1,
    expires: new Date(Date.now() + DAY_MS).toISOString(),
    plugins: [{ name: 'script', path: 'main.sh', sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length, interpreter: { path: '/bin/sh' } }],
  });
  const manifestPath = join(dir, 'manifest.json');
  await writeFile(manifestPath, manifestText);
  const keys = generateKeyPair();
  await writeFile(`${manifestPath}.minisig`, signManifest(Buffer.from(manifestText), keys.secretKey));
  for (const sandbox of [true, { readOnlyPaths: [dir] }]) {
    const error = await t.throwsAsync(launchVerified({ manifestPath, plugin: 'script', policy: { trustedKeys: [keys.publicKey] }, cookie: KV_COOKIE, sandbox, startTimeoutMs: 5000 }));
    t.true(isGatehouseError(error, 'PLUGIN_EXITED'), String(error));
    t.regex(error?.message ?? '', /the plugin said: "Error: the sealed script ran"/, 'sh found the sealed script in the sandbox');
  }
});

test('launchVerified: an unknown plugin lists the entries; a relative manifestPath is refused as for command', async (t) => {
  const { manifestPath, trustedKeys } = await signedPluginDir(t, async (dir) => {
    await writeFileWithMode(dir, 'alpha', '#!/bin/sh\nexit 0\n', 0o755);
    await writeFileWithMode(dir, 'beta', '#!/bin/sh\nexit 0\n', 0o755);
  });
  const unknown = await t.throwsAsync(launchVerified({ manifestPath, plugin: 'gamma', policy: { trustedKeys }, cookie: KV_COOKIE }));
  t.true(isGatehouseError(unknown, 'PLUGIN_NOT_IN_MANIFEST'), String(unknown));
  t.regex(unknown?.message ?? '', /it lists: alpha, beta$/);
  const relative = await t.throwsAsync(launchVerified({ manifestPath: 'manifest.json', plugin: 'alpha', policy: { trustedKeys }, cookie: KV_COOKIE }));
  t.true(isGatehouseError(relative, 'INVALID_OPTIONS'), String(relative));
  t.regex(relative?.message ?? '', /manifestPath must be an absolute path/);
});

// The bytes that run are the bytes that were verified: not when the environment tells the loader, the
// runtime or the shell to load more. Attack: a verified bash plugin given BASH_ENV runs that file first.
test('launchVerified: an environment that would load unverified code into the plugin is refused, nothing runs, and the refusal is audited', async (t) => {
  const marker = join(await tempDir(t), 'ran');
  const injected = join(await tempDir(t), 'injected.sh');
  await writeFile(injected, `touch ${marker}\n`);
  const { manifestPath, trustedKeys, audit, records } = await signedPluginDir(t, async (dir) => {
    await writeFileWithMode(dir, 'plugin', '#!/bin/bash\nexit 0\n', 0o755);
  });
  const error = await t.throwsAsync(
    launchVerified({ manifestPath, plugin: 'plugin', policy: { trustedKeys }, cookie: KV_COOKIE, audit, env: { BASH_ENV: injected }, startTimeoutMs: 5000 }),
  );
  t.true(isGatehouseError(error, 'UNVERIFIED_CODE_ENV'), String(error));
  t.regex((error as GatehouseError).message, /BASH_ENV.*allowUnverifiedCodeEnv/s, 'it names the variable and the way to pass it on purpose');
  t.false(existsSync(marker), 'the injected file never ran');
  t.is((await records()).find((r) => r.type === 'refusal')?.code, 'UNVERIFIED_CODE_ENV');
});

test('launchVerified: every variable that loads code is refused by name, unless the caller allows that name', async (t) => {
  const { manifestPath, trustedKeys } = await signedPluginDir(t, async (dir) => {
    await writeFileWithMode(dir, 'plugin', '#!/bin/bash\nexit 0\n', 0o755);
  });
  const launchWith = (env: Record<string, string>, allowUnverifiedCodeEnv?: string[]) =>
    launchVerified({ manifestPath, plugin: 'plugin', policy: { trustedKeys }, cookie: KV_COOKIE, env, startTimeoutMs: 5000, ...(allowUnverifiedCodeEnv ? { allowUnverifiedCodeEnv } : {}) });
  for (const name of CODE_LOADING_ENV_NAMES) {
    const error = await t.throwsAsync(launchWith({ [name]: '/somewhere' }));
    t.true(isGatehouseError(error, 'UNVERIFIED_CODE_ENV'), `${name}: ${String(error)}`);
  }
  // Asked for by name, the variable passes (the script then exits: the launch fails later, for that).
  const marker = join(await tempDir(t), 'ran');
  const injected = join(await tempDir(t), 'injected.sh');
  await writeFile(injected, `touch ${marker}\n`);
  const allowed = await t.throwsAsync(launchWith({ BASH_ENV: injected }, ['BASH_ENV']));
  t.true(isGatehouseError(allowed, 'PLUGIN_EXITED'), String(allowed));
  t.true(existsSync(marker), 'the caller asked for it by name');
  // A name that loads nothing is no allowance at all: refused as a mistake, not ignored.
  const unknown = await t.throwsAsync(launchWith({}, ['HOME']));
  t.true(isGatehouseError(unknown, 'INVALID_OPTIONS'), String(unknown));
});

test('launchVerified: a manifest within expiryWarningMs of its expiry starts with a warning that says when and what to do; one further off, or with the warning off, starts quietly', async (t) => {
  const dir = await tempDir(t);
  await writeFileWithMode(dir, 'p.sh', 'exit 3\n', 0o755);
  const keys = generateKeyPair();
  const manifestFor = async (expiresInMs: number) => {
    const manifest = await createManifest(dir, { patterns: ['p.sh'], version: 4, expires: new Date(Date.now() + expiresInMs) });
    const manifestPath = join(await tempDir(t), 'manifest.json');
    const text = formatManifest({ ...manifest, plugins: manifest.plugins.map((entry) => ({ ...entry, interpreter: { path: '/bin/sh' } })) });
    await writeFile(manifestPath, text);
    await writeFile(`${manifestPath}.minisig`, signManifest(Buffer.from(text), keys.secretKey));
    return manifestPath;
  };
  const warnings = async (manifestPath: string, expiryWarningMs?: number) => {
    const logger = recordingLogger();
    const options = { manifestPath, pluginDir: dir, plugin: 'p.sh', policy: { trustedKeys: [keys.publicKey] }, cookie: KV_COOKIE, logger, startTimeoutMs: 5000 };
    // The script exits at once: only what is said before the launch matters here.
    await t.throwsAsync(launchVerified(expiryWarningMs === undefined ? options : { ...options, expiryWarningMs }));
    return logger.records.filter((record) => record.level === 'warn' && /expires/.test(record.message));
  };
  const soon = await manifestFor(2 * DAY_MS);
  const [warning] = await warnings(soon);
  t.regex(warning?.message ?? '', /manifest version 4 expires at \S+ \(in 1 day, \d+ h\): p\.sh will not start again after that, restarts included; publish a new version and sign it/);
  t.like(warning?.fields, { plugin: 'p.sh', manifestVersion: 4 });
  t.deepEqual(await warnings(soon, 0), [], 'expiryWarningMs: 0 turns it off');
  t.deepEqual(await warnings(await manifestFor(30 * DAY_MS)), [], 'a month off is past the default week');
  t.is((await warnings(await manifestFor(30 * DAY_MS), 31 * DAY_MS)).length, 1, 'the window is the caller\'s');
  for (const bad of [-1, Number.NaN]) {
    await t.throwsAsync(launchVerified({ manifestPath: soon, pluginDir: dir, plugin: 'p.sh', policy: { trustedKeys: [keys.publicKey] }, cookie: KV_COOKIE, expiryWarningMs: bad }), {
      code: 'INVALID_OPTIONS',
      message: /expiryWarningMs must be a number of ms, 0 or more/,
    });
  }
});

test('launchVerified: the verification record names the sealed copy that the launch record runs, tying the verdict to its process', async (t) => {
  const { manifestPath, trustedKeys, audit, records } = await signedPluginDir(t, async (pluginDir) => {
    await writeFileWithMode(pluginDir, 'plugin', '#!/bin/sh\nexit 1\n', 0o755);
  });
  await t.throwsAsync(launchVerified({ manifestPath, plugin: 'plugin', policy: { trustedKeys }, cookie: KV_COOKIE, audit }));
  const logged = await records();
  const sealedPath = logged.find((record) => record.type === 'verification')?.sealedPath;
  const argv = logged.find((record) => record.type === 'launch')?.argv as string[] | undefined;
  t.is(typeof sealedPath, 'string');
  t.true(argv?.[0]?.startsWith(`${String(sealedPath)}/`), `${String(argv?.[0])} runs from ${String(sealedPath)}`);
});

test('launchVerified: a user or group given by name is INVALID_OPTIONS saying to give the numeric id, before anything is sealed', async (t) => {
  const { manifestPath, trustedKeys } = await signedPluginDir(t, async (pluginDir) => {
    await writeFileWithMode(pluginDir, 'plugin', '#!/bin/sh\nexit 1\n', 0o755);
  });
  const named = { user: 'nobody', group: 'nogroup' } as unknown as { user: number; group: number };
  await t.throwsAsync(launchVerified({ manifestPath, plugin: 'plugin', policy: { trustedKeys }, cookie: KV_COOKIE, ...named }), {
    code: 'INVALID_OPTIONS',
    message: /user must be a numeric id .*got the name "nobody": give its id \(id -u nobody\)/,
  });
});

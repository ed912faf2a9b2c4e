import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { formatManifest, generateKeyPair, signManifest, writeKeyPair } from '../../src/verify/index.js';
import { isAlive, waitUntil } from '../helpers/process.js';
import { sealRootDir } from '../discover/temp-dir.js';

// Compiled to dist/test/cli/: three levels up is the repository.
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const cli = join(repoRoot, 'dist/src/cli/main.js');
const kvPlugin = join(repoRoot, 'dist/examples/kv/plugin.js');
const kvProto = join(repoRoot, 'examples/kv/kv.proto');
const gatehouseIndex = pathToFileURL(join(repoRoot, 'dist/src/index.js')).href;
const KV_COOKIE = 'GATEHOUSE_KV_PLUGIN=d41f0b3c-kv';
const kvArgs = ['--cookie', KV_COOKIE, '--proto', kvProto];
const kvCommand = ['--', process.execPath, kvPlugin];

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the gatehouse binary as a user would: node dist/src/cli/main.js ARGS, no shell. SIGKILLed after 30 s
 * (code null): a command stuck in a blocked event loop never sees a SIGTERM.
 */
function gatehouse(args: readonly string[], stdin = ''): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [cli, ...args], { cwd: repoRoot, timeout: 30_000, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
    child.stdin?.end(stdin);
  });
}

const call = (args: readonly string[], stdin?: string): Promise<Result> => gatehouse(['call', ...args], stdin);

function stdoutLines(result: Result): unknown[] {
  return result.stdout.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as unknown);
}

/** The failure line; exactly one, whatever plugin logs came before it. */
function failureLine(t: ExecutionContext, result: Result): string {
  const lines = result.stderr.split('\n').filter((line) => line.startsWith('gatehouse call: '));
  t.is(lines.length, 1, result.stderr);
  t.false(/\n\s+at /.test(result.stderr), 'no stack trace');
  return lines[0] ?? '';
}

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-cli-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function writeExecutable(dir: string, name: string, content: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, content);
  await chmod(file, 0o755);
  return file;
}

/** A shell script that would leave a marker file behind if it ever ran. */
async function markerScript(dir: string): Promise<{ script: string; marker: string }> {
  const marker = join(dir, 'marker');
  return { script: await writeExecutable(dir, 'marker.sh', `#!/bin/sh\ntouch '${marker}'\n`), marker };
}

const sha256 = (bytes: string | Buffer): string => createHash('sha256').update(bytes).digest('hex');

// A plugin that echoes each request's bytes back, so any message type round-trips through it: the JSON
// mapping is then checked in both directions against a real plugin. It writes its pid for the kill checks.
const ECHO_PROTO = `syntax = "proto3";
package echo;
import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
enum Color { COLOR_UNSPECIFIED = 0; RED = 1; }
message Inner { string note_text = 1; }
message All {
  int64 big = 1; uint64 ubig = 2; int32 small = 3; float ratio = 4; double precise = 5; bool flag = 6;
  bytes blob = 7; Color color = 8; repeated Inner inners = 9; map<string, int64> counts = 10;
  map<int64, string> by_id = 11; optional string opt = 12; oneof choice { string name = 13; int32 number = 14; }
  Inner unset = 15; google.protobuf.Timestamp at = 16; google.protobuf.Duration took = 17;
  google.protobuf.Struct meta = 18; google.protobuf.Int64Value maybe = 19; google.protobuf.FieldMask mask = 20;
  google.protobuf.Any extra = 21; google.protobuf.Value anything = 22;
}
service Echo {
  rpc Echo(All) returns (All);
  rpc Repeat(All) returns (stream All);
  rpc Hang(google.protobuf.Empty) returns (google.protobuf.Empty);
  rpc Missing(google.protobuf.Empty) returns (google.protobuf.Empty);
  rpc MissingStream(google.protobuf.Empty) returns (stream google.protobuf.Empty);
  rpc Collect(stream All) returns (All);
  rpc Chat(stream All) returns (stream All);
}
`;

async function echoPlugin(dir: string): Promise<{ proto: string; command: string[]; pidFile: string }> {
  const pidFile = join(dir, 'echo.pid');
  const plugin = `import { writeFileSync } from 'node:fs';
import { serve } from ${JSON.stringify(gatehouseIndex)};
writeFileSync(${JSON.stringify(pidFile)}, String(process.pid));
const raw = (name, responseStream, requestStream = false) => ({ path: '/echo.Echo/' + name, requestStream, responseStream,
  requestSerialize: (b) => b, requestDeserialize: (b) => b, responseSerialize: (b) => b, responseDeserialize: (b) => b });
await serve({ cookie: { key: 'ECHO_PLUGIN', value: 'echo' }, versions: { 1: [{
  definition: { Echo: raw('Echo', false), Repeat: raw('Repeat', true), Hang: raw('Hang', false), Collect: raw('Collect', false, true), Chat: raw('Chat', true, true) },
  implementation: {
    Echo: (call, callback) => callback(null, call.request),
    Repeat: (call) => { for (let i = 0; i < 3; i++) call.write(call.request); call.end(); },
    Hang: () => {},
    // Encoded messages one after the other decode as one, merged: what was sent, in order, answered at once.
    Collect: (call, callback) => { const parts = []; call.on('data', (b) => parts.push(b)); call.on('end', () => callback(null, Buffer.concat(parts))); },
    Chat: (call) => { call.on('data', (b) => call.write(b)); call.on('end', () => call.end()); },
  } }] } });
`;
  const proto = join(dir, 'echo.proto');
  await writeFile(proto, ECHO_PROTO);
  await writeFile(join(dir, 'echo-plugin.mjs'), plugin);
  return { proto, command: ['--', process.execPath, join(dir, 'echo-plugin.mjs')], pidFile };
}


test('call: a --script runs Put then Get against one plugin, and bytes round-trip as base64', async (t) => {
  const dir = await tempDir(t);
  const script = join(dir, 'calls.jsonl');
  await writeFile(
    script,
    [
      JSON.stringify({ method: 'kv.KV/Put', request: { key: 'k', value: Buffer.from([0, 1, 2, 255]).toString('base64') } }),
      '',
      JSON.stringify({ method: 'kv.KV/Get', request: { key: 'k' } }),
      JSON.stringify({ method: 'kv.KV/Get', request: { key: 'never-set' } }),
    ].join('\n'),
  );
  const result = await call([...kvArgs, '--script', script, ...kvCommand]);
  t.is(result.code, 0, result.stderr);
  t.deepEqual(stdoutLines(result), [{}, { value: 'AAEC/w==' }, { value: '' }]);
});

test('call: --script - reads the calls from standard input', async (t) => {
  const input = `${JSON.stringify({ method: 'kv.KV/Put', request: { key: 'a', value: 'aGk=' } })}\r\n{"method":"kv.KV/Get","request":{"key":"a"}}\n`;
  const result = await call([...kvArgs, '--script', '-', ...kvCommand], input);
  t.is(result.code, 0, result.stderr);
  t.deepEqual(stdoutLines(result), [{}, { value: 'aGk=' }]);
});

test('call: --method with --data makes one call and prints one JSON line; plugin logs go to stderr', async (t) => {
  const result = await call([...kvArgs, '--method', 'kv.KV/Put', '--data', '{"key":"greeting","value":"aGVsbG8="}', ...kvCommand]);
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, '{}\n');
  t.regex(result.stderr, /^\[plugin\.js\] info: put \{"fields":\{"key":"greeting","bytes":5\}\}$/m);
});

test('call: --json-logs writes the plugin logs as JSON lines on stderr', async (t) => {
  const result = await call([...kvArgs, '--json-logs', '--method', 'kv.KV/Put', '--data', '{"key":"k","value":""}', ...kvCommand]);
  t.is(result.code, 0, result.stderr);
  const records = result.stderr.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>);
  t.like(records.find((record) => record.msg === 'put'), { level: 'info', plugin: 'plugin.js', fields: { key: 'k', bytes: 0 } });
});

test('call: an unknown method is a usage error that lists the methods found', async (t) => {
  const result = await call([...kvArgs, '--method', 'kv.KV/Nope', ...kvCommand]);
  t.is(result.code, 2);
  t.is(result.stdout, '');
  t.regex(failureLine(t, result), /^gatehouse call: --method: method kv\.KV\/Nope not found in .*kv\.proto; methods found: kv\.KV\/Get, kv\.KV\/Put$/);
});

test('call: bad JSON, in --data or on a script line, is a usage error and starts nothing', async (t) => {
  const dir = await tempDir(t);
  const { script: command, marker } = await markerScript(dir);
  const data = await call([...kvArgs, '--method', 'kv.KV/Get', '--data', '{"key":', '--', command]);
  t.is(data.code, 2);
  t.regex(failureLine(t, data), /^gatehouse call: --data: not valid JSON: /);

  const script = join(dir, 'calls.jsonl');
  await writeFile(script, '{"method":"kv.KV/Get","request":{"key":"a"}}\n{"method":"kv.KV/Get",\n');
  const line = await call([...kvArgs, '--script', script, '--', command]);
  t.is(line.code, 2);
  t.regex(failureLine(t, line), /^gatehouse call: script line 2: not valid JSON: /);
  t.false(existsSync(marker), 'the plugin command never ran');
});

test('call: a request that does not fit its message type names the field', async (t) => {
  const unknown = await call([...kvArgs, '--method', 'kv.KV/Get', '--data', '{"kee":"a"}', ...kvCommand]);
  t.is(unknown.code, 2);
  t.is(failureLine(t, unknown), 'gatehouse call: --data: request for kv.KV/Get: $.kee: kv.GetRequest has no field "kee"');
  const notBase64 = await call([...kvArgs, '--method', 'kv.KV/Put', '--data', '{"key":"a","value":"no!"}', ...kvCommand]);
  t.is(notBase64.code, 2);
  t.regex(failureLine(t, notBase64), /\$\.value: expected base64 bytes/);
});

test('call: without --cookie it refuses to start and says why the cookie is needed', async (t) => {
  const result = await call(['--proto', kvProto, '--method', 'kv.KV/Get', ...kvCommand]);
  t.is(result.code, 2);
  t.regex(failureLine(t, result), /^gatehouse call: --cookie KEY=VALUE is required: go-plugin plugins refuse to start without their magic cookie/);
});

test('call: a plugin that rejects the cookie is reported as a cookie failure, without the value', async (t) => {
  const result = await call(['--cookie', 'GATEHOUSE_KV_PLUGIN=not-the-value', '--proto', kvProto, '--method', 'kv.KV/Get', ...kvCommand]);
  t.is(result.code, 1);
  const line = failureLine(t, result);
  t.regex(line, /^gatehouse call: cookie: the plugin rejected the magic cookie GATEHOUSE_KV_PLUGIN \(.*exit code 1\); check the cookie \(--cookie/);
  t.false(line.includes('not-the-value'));
});

test('call: --sha256 runs a COMMAND whose bytes match', async (t) => {
  const dir = await tempDir(t);
  const wrapper = `#!/bin/sh\nexec '${process.execPath}' '${kvPlugin}'\n`;
  const command = await writeExecutable(dir, 'kv-plugin.sh', wrapper);
  const result = await call([...kvArgs, '--sha256', sha256(wrapper), '--method', 'kv.KV/Get', '--data', '{"key":"x"}', '--', command]);
  t.is(result.code, 0, result.stderr);
  t.deepEqual(stdoutLines(result), [{ value: '' }]);
});

test('call: --sha256 refuses a COMMAND whose bytes differ, without running it', async (t) => {
  const dir = await tempDir(t);
  const { script, marker } = await markerScript(dir);
  const expected = sha256('something else');
  const result = await call([...kvArgs, '--sha256', expected, '--method', 'kv.KV/Get', '--', script]);
  t.is(result.code, 1);
  const line = failureLine(t, result);
  t.regex(line, /^gatehouse call: sha256: /);
  t.true(line.includes(sha256(await readFile(script))) && line.includes(expected));
  t.false(existsSync(marker), 'the command never ran');
});

test('call: --seal-dir names where the sealed copy goes; one others can write is refused before anything runs', async (t) => {
  const dir = await tempDir(t);
  const { script, marker } = await markerScript(dir);
  const digest = sha256(await readFile(script));
  // /tmp is sticky and world-writable: another user could plant node_modules or lib/python3 above the copy.
  const result = await call([...kvArgs, '--sha256', digest, '--seal-dir', join(dir, 'seal'), '--method', 'kv.KV/Get', '--', script]);
  t.is(result.code, 1);
  t.regex(failureLine(t, result), /cannot seal plugins under .*\/seal: \/tmp: writable by group or others .*--seal-dir/);
  t.false(existsSync(marker), 'the command never ran');
  const usage = await call([...kvArgs, '--seal-dir', dir, '--method', 'kv.KV/Get', '--', script]);
  t.is(usage.code, 2);
  t.regex(usage.stderr, /--seal-dir goes with --sha256 or --manifest/);
});

test('call: a plugin that exits before its handshake is named with its exit code and last words', async (t) => {
  const dir = await tempDir(t);
  const command = await writeExecutable(dir, 'early.sh', '#!/bin/sh\necho "boom: no configuration" >&2\nexit 3\n');
  const result = await call([...kvArgs, '--method', 'kv.KV/Get', '--', command]);
  t.is(result.code, 1);
  t.is(failureLine(t, result), 'gatehouse call: plugin exited before its handshake (exit code 3); the plugin said: "boom: no configuration"');
  t.regex(result.stderr, /^\[early\.sh\] stderr: boom: no configuration$/m);
});

/** A plugin that writes its pid and never prints a handshake line: only the start timeout ends its launch. */
async function silentPlugin(dir: string): Promise<{ command: string; pid: () => Promise<number> }> {
  const pidFile = join(dir, 'silent.pid');
  const command = await writeExecutable(dir, 'silent.sh', `#!/bin/sh\necho "starting, never shaking hands" >&2\necho $$ > '${pidFile}.tmp'\nmv '${pidFile}.tmp' '${pidFile}'\nexec sleep 60\n`);
  const pid = async (): Promise<number> => {
    while (!existsSync(pidFile)) await new Promise((resolve) => setTimeout(resolve, 20));
    return Number(await readFile(pidFile, 'utf8'));
  };
  return { command, pid };
}

test('call: a plugin that prints no handshake fails after --timeout, with its last words', async (t) => {
  const plugin = await silentPlugin(await tempDir(t));
  const result = await call([...kvArgs, '--timeout', '500', '--method', 'kv.KV/Get', '--', plugin.command]);
  t.is(result.code, 1);
  t.is(
    failureLine(t, result),
    'gatehouse call: handshake: plugin printed no handshake line within 500 ms; the plugin said: "starting, never shaking hands"',
  );
  t.false(isAlive(await plugin.pid()));
});

test('call: SIGINT during the handshake stops the launch at once, exits 130 and leaves no plugin', async (t) => {
  const plugin = await silentPlugin(await tempDir(t));
  const child = spawn(process.execPath, [cli, 'call', ...kvArgs, '--timeout', '30000', '--method', 'kv.KV/Get', '--', plugin.command], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const pid = await plugin.pid();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const signalled = Date.now();
  child.kill('SIGINT');
  t.is(await exited, 130);
  t.true(Date.now() - signalled < 20_000, `exited ${Date.now() - signalled} ms after SIGINT, not at the 30 s start timeout`);
  t.regex(stderr, /^gatehouse call: interrupted by SIGINT$/m);
  t.false(isAlive(pid));
});

/** The first regular file below `dir`, looked for every millisecond; undefined after `timeoutMs`. */
async function firstFileBelow(dir: string, timeoutMs: number): Promise<string | undefined> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const found = readdirSync(dir, { recursive: true, withFileTypes: true }).find((entry) => entry.isFile());
    if (found) return join(found.parentPath, found.name);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return undefined;
}

test('call: SIGINT while --sha256 seals the plugin exits 130, and the plugin never runs', async (t) => {
  const dir = await tempDir(t);
  const sealDir = await sealRootDir(t);
  const { script, marker } = await markerScript(dir);
  // A shell comment of 64 MiB after the script: sealing copies and hashes for a while.
  const bytes = Buffer.concat([await readFile(script), Buffer.alloc(64 << 20, '#')]);
  await writeFile(script, bytes);
  const child = spawn(process.execPath, [cli, 'call', ...kvArgs, '--sha256', sha256(bytes), '--seal-dir', sealDir, '--method', 'kv.KV/Get', '--', script], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  // Stopped once the sealed copy appears, so that SIGINT comes while sealing however fast the machine is.
  const copy = await firstFileBelow(sealDir, 20_000);
  child.kill('SIGSTOP');
  if (copy === undefined || statSync(copy).size === bytes.length) t.log('inconclusive: sealing had finished before SIGINT');
  child.kill('SIGINT');
  child.kill('SIGCONT');
  t.is(await exited, 130, stderr);
  t.regex(stderr, /^gatehouse call: interrupted by SIGINT$/m);
  t.false(existsSync(marker), 'the plugin ran after the interrupt');
  t.deepEqual(readdirSync(sealDir), [], 'the sealed copy is removed');
});

test('call: --insecure against a plugin that requires TLS fails as a TLS problem', async (t) => {
  const result = await call([...kvArgs, '--insecure', '--method', 'kv.KV/Get', ...kvCommand]);
  t.is(result.code, 1);
  t.regex(failureLine(t, result), /^gatehouse call: TLS: the plugin exited before its handshake \(exit code 1\) when launched with insecurePlaintext: .*drop insecurePlaintext \(--insecure for gatehouse call\); the plugin said: ".*PLUGIN_CLIENT_CERT/);
});

test('call: usage errors exit 2 with one line and print nothing on stdout', async (t) => {
  const method = ['--method', 'kv.KV/Get'];
  const cases: [string, string[]][] = [
    ['no COMMAND', [...kvArgs, ...method]],
    ['COMMAND before --', [...kvArgs, ...method, process.execPath]],
    ['both --method and --script', [...kvArgs, ...method, '--script', '-', ...kvCommand]],
    ['neither --method nor --script', [...kvArgs, ...kvCommand]],
    ['--data without --method', [...kvArgs, '--script', '-', '--data', '{}', ...kvCommand]],
    ['cookie without =', ['--cookie', 'GATEHOUSE_KV_PLUGIN', '--proto', kvProto, ...method, ...kvCommand]],
    ['cookie key for the contract', ['--cookie', 'PLUGIN_X=1', '--proto', kvProto, ...method, ...kvCommand]],
    ['repeated --cookie', [...kvArgs, '--cookie', KV_COOKIE, ...method, ...kvCommand]],
    ['bad --timeout', [...kvArgs, ...method, '--timeout', '10s', ...kvCommand]],
    ['bad --sha256', [...kvArgs, ...method, '--sha256', 'abc', ...kvCommand]],
    ['bad --protocol-version', [...kvArgs, ...method, '--protocol-version', '1,,2', ...kvCommand]],
    ['malformed --method', [...kvArgs, '--method', 'kv.KV.Get', ...kvCommand]],
    ['unknown option', [...kvArgs, ...method, '--verbose', ...kvCommand]],
  ];
  for (const [name, args] of cases) {
    const result = await call(args);
    t.is(result.code, 2, `${name}: ${result.stderr}`);
    t.is(result.stdout, '', name);
    t.is(result.stderr.split('\n').filter(Boolean).length, 1, `${name}: ${result.stderr}`);
    t.true(result.stderr.startsWith('gatehouse call: '), name);
  }
  const bare = await gatehouse([]);
  t.is(bare.code, 2);
  t.regex(bare.stderr, /^gatehouse: no command given; commands: call/);
  const unknown = await gatehouse(['launch']);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /^gatehouse: unknown command "launch"/);
});

test('call: a --proto or an import that is a FIFO, a device or a link is refused at once, naming it, and nothing starts', async (t) => {
  const dir = await tempDir(t);
  const { script, marker } = await markerScript(dir);
  const fifo = join(dir, 'fifo.proto');
  await new Promise<void>((resolve, reject) => execFile('mkfifo', [fifo], (error) => (error ? reject(error) : resolve())));
  const imports = join(dir, 'imports');
  await mkdir(imports);
  await symlink(kvProto, join(imports, 'linked.proto'));
  const importer = (name: string): string => `syntax = "proto3";\nimport "${name}";\n`;
  await writeFile(join(dir, 'imports-fifo.proto'), importer('fifo.proto'));
  await writeFile(join(dir, 'imports-link.proto'), importer('linked.proto'));
  const cases: [string, string[], RegExp][] = [
    ['--proto that is not there', ['--proto', join(dir, 'none.proto')], /^gatehouse call: proto: FILE_NOT_FOUND: .*none\.proto: no such file/],
    ['--proto FIFO', ['--proto', fifo], /^gatehouse call: proto: FILE_NOT_REGULAR: .*fifo\.proto: not a regular file/],
    ['--proto /dev/zero', ['--proto', '/dev/zero'], /^gatehouse call: proto: FILE_NOT_REGULAR: \/dev\/zero: not a regular file/],
    ['an import beside the file that is a FIFO', ['--proto', join(dir, 'imports-fifo.proto')], /FILE_NOT_REGULAR: .*fifo\.proto \(imported by .*imports-fifo\.proto\): not a regular file/],
    ['an import in --import-path that is a link', ['--proto', join(dir, 'imports-link.proto'), '--import-path', imports], /FILE_NOT_REGULAR: .*linked\.proto \(imported by .*imports-link\.proto\): .*symbolic link/],
  ];
  for (const [name, args, expected] of cases) {
    const result = await call(['--cookie', KV_COOKIE, ...args, '--method', 'kv.KV/Get', '--', script]);
    t.is(result.code, 1, `${name}: ${result.stderr}`);
    t.regex(failureLine(t, result), expected, name);
  }
  t.false(existsSync(marker), 'the plugin never ran');
});

test('call: .proto files are read bounded: a file over 1 MiB, or more than 1,024 files through imports, is PROTO_TOO_LARGE', async (t) => {
  const dir = await tempDir(t);
  const { script, marker } = await markerScript(dir);
  // A valid .proto, made large by a comment: only its size is wrong.
  const large = join(dir, 'large.proto');
  await writeFile(large, `${await readFile(kvProto, 'utf8')}\n// ${'x'.repeat(1 << 20)}\n`);
  // A chain of 1,025 small files, each importing the next.
  const count = 1025;
  await Promise.all(
    Array.from({ length: count }, (_, i) => writeFile(join(dir, `f${i}.proto`), `syntax = "proto3";\n${i + 1 < count ? `import "f${i + 1}.proto";\n` : ''}`)),
  );
  const cases: [string, string, RegExp][] = [
    ['a file over 1 MiB', large, /^gatehouse call: proto: PROTO_TOO_LARGE: .*large\.proto: larger than 1048576 bytes/],
    ['1,025 files', join(dir, 'f0.proto'), /^gatehouse call: proto: PROTO_TOO_LARGE: .*f1024\.proto \(imported by .*f1023\.proto\): more than 1024 \.proto files/],
  ];
  for (const [name, proto, expected] of cases) {
    const result = await call(['--cookie', KV_COOKIE, '--proto', proto, '--method', 'kv.KV/Get', '--', script]);
    t.is(result.code, 1, `${name}: ${result.stderr}`);
    t.regex(failureLine(t, result), expected, name);
  }
  t.false(existsSync(marker), 'the plugin never ran');
});

test('call: imports are found in the --import-path directories first, then beside the importing file', async (t) => {
  const dir = await tempDir(t);
  const [first, second] = [join(dir, 'first'), join(dir, 'second')];
  await Promise.all([mkdir(first), mkdir(second)]);
  const service = (name: string): string => `syntax = "proto3";\npackage p;\nimport "google/protobuf/empty.proto";\nservice ${name} { rpc M(google.protobuf.Empty) returns (google.protobuf.Empty); }\n`;
  await writeFile(join(dir, 'main.proto'), 'syntax = "proto3";\nimport "dep.proto";\n');
  await writeFile(join(dir, 'dep.proto'), service('Beside'));
  await writeFile(join(second, 'dep.proto'), service('Second'));
  const methods = async (importPaths: string[]): Promise<string> => {
    const result = await call(['--cookie', KV_COOKIE, '--proto', join(dir, 'main.proto'), ...importPaths.flatMap((path) => ['--import-path', path]), '--method', 'p.Nope/M', ...kvCommand]);
    t.is(result.code, 2, result.stderr);
    return failureLine(t, result).replace(/.*methods found: /, '');
  };
  t.is(await methods([]), 'p.Beside/M');
  t.is(await methods([first, second]), 'p.Second/M');
  await writeFile(join(first, 'dep.proto'), service('First'));
  t.is(await methods([first, second]), 'p.First/M');
});

test('call: an import that is absolute or climbs with .. is refused, and an imported file that does not parse is not quoted', async (t) => {
  // Attack: a vendored .proto importing a secret; its first token (a whole JWT) came back in the parse error.
  const dir = await tempDir(t);
  await mkdir(join(dir, 'protos'));
  await writeFile(join(dir, 'token'), 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJl\n');
  const refused = async (target: string): Promise<string> => {
    await writeFile(join(dir, 'protos', 'vendor.proto'), `syntax = "proto3";\nimport "${target}";\n`);
    const result = await call(['--cookie', KV_COOKIE, '--proto', join(dir, 'protos', 'vendor.proto'), '--method', 'p.S/M', ...kvCommand]);
    t.is(result.code, 2, result.stderr);
    t.false(result.stderr.includes('eyJ'), result.stderr);
    return failureLine(t, result);
  };
  for (const target of ['../token', join(dir, 'token'), '/dev/zero', 'google/protobuf/../../token', 'a/./b.proto']) {
    t.regex(await refused(target), /imports ".*": an import is a relative path without "\." or "\.\." \(as protoc requires\)/, target);
  }
  // Reached as it should be, through an --import-path, a file that is no .proto is named with its line, not quoted.
  await writeFile(join(dir, 'protos', 'vendor.proto'), 'syntax = "proto3";\nimport "token";\n');
  const result = await call(['--cookie', KV_COOKIE, '--proto', join(dir, 'protos', 'vendor.proto'), '--import-path', dir, '--method', 'p.S/M', ...kvCommand]);
  t.is(result.code, 2, result.stderr);
  t.false(result.stderr.includes('eyJ'), result.stderr);
  t.regex(failureLine(t, result), /token \(imported by .*vendor\.proto\): does not parse as a \.proto file \(line 1\)$/);
});

test('call: --help and gatehouse --help print usage on stdout and exit 0', async (t) => {
  const help = await call(['--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /^Usage: gatehouse call \[options\]/);
  t.regex(help.stdout, /--sha256 HEX/);
  const top = await gatehouse(['--help']);
  t.is(top.code, 0);
  t.regex(top.stdout, /^Usage: gatehouse <command>/);
  t.regex(top.stdout, /^ {2}call {2}/m);
});

test('call: requests and responses are proto3 JSON, well-known types included', async (t) => {
  const echo = await echoPlugin(await tempDir(t));
  const request = {
    big: '-9223372036854775808',
    ubig: '18446744073709551615',
    small: -5,
    ratio: 0.1,
    precise: 'NaN',
    flag: true,
    blob: 'AAEC_w', // URL-safe and unpadded are accepted; standard base64 is printed
    color: 'RED',
    inners: [{ noteText: 'json name' }, { note_text: 'proto name' }],
    counts: { x: '7' },
    by_id: { '-3': 'minus three' },
    opt: '',
    number: 7,
    at: '2024-02-29T12:00:00.120+01:00',
    took: '-1.5s',
    meta: { list: [1, 'two', null, { nested: false }] },
    maybe: '42',
    mask: 'fooBar,baz',
    extra: { '@type': 'type.googleapis.com/echo.Inner', noteText: 'packed' },
    anything: null,
  };
  const result = await call(['--cookie', 'ECHO_PLUGIN=echo', '--proto', echo.proto, '--method', 'echo.Echo/Echo', '--data', JSON.stringify(request), ...echo.command]);
  t.is(result.code, 0, result.stderr);
  t.deepEqual(stdoutLines(result), [
    {
      big: '-9223372036854775808',
      ubig: '18446744073709551615',
      small: -5,
      ratio: 0.1,
      precise: 'NaN',
      flag: true,
      blob: 'AAEC/w==',
      color: 'RED',
      inners: [{ noteText: 'json name' }, { noteText: 'proto name' }],
      counts: { x: '7' },
      byId: { '-3': 'minus three' },
      opt: '', // set, so printed although it is the default
      number: 7,
      at: '2024-02-29T11:00:00.120Z',
      took: '-1.500s',
      meta: { list: [1, 'two', null, { nested: false }] },
      maybe: '42',
      mask: 'fooBar,baz',
      extra: { '@type': 'type.googleapis.com/echo.Inner', noteText: 'packed' },
      anything: null,
    },
  ]);
  const empty = await call(['--cookie', 'ECHO_PLUGIN=echo', '--proto', echo.proto, '--method', 'echo.Echo/Echo', ...echo.command]);
  t.deepEqual(stdoutLines(empty), [
    { big: '0', ubig: '0', small: 0, ratio: 0, precise: 0, flag: false, blob: '', color: 'COLOR_UNSPECIFIED', inners: [], counts: {}, byId: {} },
  ], 'fields without presence print their defaults; unset messages, optionals and oneofs are left out');
});

test('call: out-of-range numbers and clashing oneof members are refused before the call', async (t) => {
  const echo = await echoPlugin(await tempDir(t));
  const run = (data: unknown): Promise<Result> =>
    call(['--cookie', 'ECHO_PLUGIN=echo', '--proto', echo.proto, '--method', 'echo.Echo/Echo', '--data', JSON.stringify(data), ...echo.command]);
  t.regex(failureLine(t, await run({ small: 2 ** 31 })), /\$\.small: 2147483648 is out of range for int32$/);
  t.regex(failureLine(t, await run({ big: 2 ** 60 })), /\$\.big: expected an integer \(int64\)/);
  t.regex(failureLine(t, await run({ name: 'a', number: 1 })), /name and number belong to the same oneof/);
  t.regex(failureLine(t, await run({ at: '2023-02-29T00:00:00Z' })), /\$\.at: "2023-02-29T00:00:00Z" is not a valid date and time$/);
  t.false(existsSync(echo.pidFile), 'the plugin never started');
});

test('call: a server-streaming method prints one line per message', async (t) => {
  const echo = await echoPlugin(await tempDir(t));
  const result = await call(['--cookie', 'ECHO_PLUGIN=echo', '--proto', echo.proto, '--method', 'echo.Echo/Repeat', '--data', '{"small":3}', ...echo.command]);
  t.is(result.code, 0, result.stderr);
  t.is(stdoutLines(result).length, 3);
  t.true(stdoutLines(result).every((line) => (line as { small: number }).small === 3));
});

test('call: a failed call exits 1 naming the method and gRPC status, and the plugin is stopped', async (t) => {
  const echo = await echoPlugin(await tempDir(t));
  const result = await call(['--cookie', 'ECHO_PLUGIN=echo', '--proto', echo.proto, '--method', 'echo.Echo/Missing', ...echo.command]);
  t.is(result.code, 1);
  t.regex(failureLine(t, result), /^gatehouse call: echo\.Echo\/Missing failed: UNIMPLEMENTED: /);
  t.false(isAlive(Number(await readFile(echo.pidFile, 'utf8'))));
  const stream = await call(['--cookie', 'ECHO_PLUGIN=echo', '--proto', echo.proto, '--method', 'echo.Echo/MissingStream', ...echo.command]);
  t.is(stream.code, 1);
  t.regex(failureLine(t, stream), /^gatehouse call: echo\.Echo\/MissingStream failed: UNIMPLEMENTED: /, 'worded as a unary failure');
});

test('call: SIGINT stops the plugin and exits 130', async (t) => {
  const echo = await echoPlugin(await tempDir(t));
  const child = spawn(process.execPath, [cli, 'call', '--cookie', 'ECHO_PLUGIN=echo', '--proto', echo.proto, '--method', 'echo.Echo/Hang', ...echo.command], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  // The Hang call is in flight once the plugin has written its pid and answered the health check.
  while (!existsSync(echo.pidFile)) await new Promise((resolve) => setTimeout(resolve, 50));
  await new Promise((resolve) => setTimeout(resolve, 500));
  child.kill('SIGINT');
  t.is(await exited, 130);
  t.regex(stderr, /^gatehouse call: interrupted by SIGINT$/m);
  t.false(isAlive(Number(await readFile(echo.pidFile, 'utf8'))));
});

/** Whether process `pid` has `fifo` open, or a thread of it waits in the kernel for the FIFO's writer. */
function readingFifo(pid: number, fifo: string): boolean {
  const entries = (dir: string): string[] => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  const read = (file: string, how: (path: string) => string): string => {
    try {
      return how(file);
    } catch {
      return '';
    }
  };
  if (entries(`/proc/${pid}/fd`).some((fd) => read(`/proc/${pid}/fd/${fd}`, readlinkSync) === fifo)) return true;
  return entries(`/proc/${pid}/task`).some((task) => read(`/proc/${pid}/task/${task}/wchan`, (path) => readFileSync(path, 'utf8')) === 'wait_for_partner');
}

test('call: SIGINT while a --script FIFO has no writer yet exits 130 at once, not when a writer comes', async (t) => {
  // Node cannot exit while a thread-pool thread is blocked opening a FIFO: a second Ctrl-C was needed.
  const dir = await tempDir(t);
  const echo = await echoPlugin(dir);
  const fifo = join(dir, 'script.fifo');
  await new Promise<void>((resolve, reject) => execFile('mkfifo', [fifo], (error) => (error ? reject(error) : resolve())));
  const child = spawn(process.execPath, [cli, 'call', '--cookie', 'ECHO_PLUGIN=echo', '--proto', echo.proto, '--script', fifo, ...echo.command], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  // With --proto every call is planned, the script read, before the plugin starts: SIGINT once that read began.
  t.true(await waitUntil(() => readingFifo(child.pid ?? 0, fifo), 20_000), 'the script was never opened');
  child.kill('SIGINT');
  const stuck = new Promise<string>((resolve) => setTimeout(() => resolve('still running 20 s after SIGINT'), 20_000).unref());
  t.is(await Promise.race([exited, stuck]), 130, stderr);
  t.regex(stderr, /^gatehouse call: interrupted by SIGINT$/m);
  t.false(existsSync(echo.pidFile), 'the plugin never started');
});

/** The echo plugin as the one entry of a signed manifest beside it, run by the system node; keys in DIR/keys. */
async function signedEchoManifest(t: ExecutionContext): Promise<{ echo: Awaited<ReturnType<typeof echoPlugin>>; manifestArgs: string[] }> {
  const dir = await tempDir(t);
  const echo = await echoPlugin(dir);
  const script = await readFile(join(dir, 'echo-plugin.mjs'));
  const manifest = formatManifest({
    schema: 'gatehouse.manifest/v1',
    version: 1,
    expires: new Date(Date.now() + 86_400_000).toISOString(),
    plugins: [{ name: 'echo', path: 'echo-plugin.mjs', sha256: sha256(script), size: script.length, interpreter: { path: process.execPath } }],
  });
  const manifestPath = join(dir, 'manifest.json');
  await writeFile(manifestPath, manifest);
  const pair = generateKeyPair();
  const keys = await tempDir(t);
  await writeKeyPair(join(keys, 'release'), pair);
  // Only the public half is trusted: the secret half signs and then leaves the keys directory.
  await rm(join(keys, 'release.key'));
  await writeFile(`${manifestPath}.minisig`, signManifest(Buffer.from(manifest), pair.secretKey));
  const manifestArgs = ['--manifest', manifestPath, '--trust', keys, '--plugin', 'echo'];
  return { echo, manifestArgs };
}

test('call --manifest: runs the entry of a signed manifest, sealed, with the manifest naming the command', async (t) => {
  const { echo, manifestArgs } = await signedEchoManifest(t);
  const result = await call(['--cookie', 'ECHO_PLUGIN=echo', '--proto', echo.proto, '--method', 'echo.Echo/Echo', '--data', '{"small":5}', ...manifestArgs]);
  t.is(result.code, 0, result.stderr);
  t.like(stdoutLines(result)[0], { small: 5 });
});

test('call --manifest: a plugin changed after signing is refused without running', async (t) => {
  const { echo, manifestArgs } = await signedEchoManifest(t);
  const script = join(echo.proto, '..', 'echo-plugin.mjs');
  await writeFile(script, `${await readFile(script, 'utf8')}// one more byte\n`);
  const result = await call(['--cookie', 'ECHO_PLUGIN=echo', '--proto', echo.proto, '--method', 'echo.Echo/Echo', ...manifestArgs]);
  t.is(result.code, 1);
  t.regex(failureLine(t, result), /^gatehouse call: manifest: (SIZE|DIGEST)_MISMATCH: /);
  t.false(existsSync(echo.pidFile), 'the plugin never ran');
});

test('call --manifest: an entry the manifest does not list, or a manifest nobody trusted signed, runs nothing', async (t) => {
  const { echo, manifestArgs } = await signedEchoManifest(t);
  const base = ['--cookie', 'ECHO_PLUGIN=echo', '--proto', echo.proto, '--method', 'echo.Echo/Echo'];
  const missing = await call([...base, ...manifestArgs.slice(0, -1), 'nope']);
  t.is(missing.code, 1);
  t.regex(failureLine(t, missing), /^gatehouse call: manifest: PLUGIN_NOT_IN_MANIFEST: nope: /);
  const otherKeys = await tempDir(t);
  await writeKeyPair(join(otherKeys, 'other'), generateKeyPair());
  await rm(join(otherKeys, 'other.key'));
  const untrusted = await call([...base, ...manifestArgs.slice(0, 2), '--trust', otherKeys, '--plugin', 'echo']);
  t.is(untrusted.code, 1);
  t.regex(failureLine(t, untrusted), /^gatehouse call: manifest: SIGNATURE_UNTRUSTED: /);
  t.false(existsSync(echo.pidFile), 'the plugin never ran');
});

test('call --manifest: usage errors for a COMMAND, --sha256, or a missing --trust or --plugin', async (t) => {
  const base = [...kvArgs, '--method', 'kv.KV/Get'];
  const manifest = ['--manifest', 'm.json'];
  const cases: [string, string[]][] = [
    ['COMMAND after --', [...base, ...manifest, '--trust', 'keys', '--plugin', 'kv', ...kvCommand]],
    ['--sha256 too', [...base, ...manifest, '--trust', 'keys', '--plugin', 'kv', '--sha256', sha256('x')]],
    ['no --trust', [...base, ...manifest, '--plugin', 'kv']],
    ['no --plugin', [...base, ...manifest, '--trust', 'keys']],
    ['--plugin without --manifest', [...base, '--plugin', 'kv', ...kvCommand]],
    ['--trust without --manifest', [...base, '--trust', 'keys', ...kvCommand]],
    ['bad --threshold', [...base, ...manifest, '--trust', 'keys', '--plugin', 'kv', '--threshold', '0']],
  ];
  for (const [name, args] of cases) {
    const result = await call(args);
    t.is(result.code, 2, `${name}: ${result.stderr}`);
    t.regex(failureLine(t, result), /^gatehouse call: .*\(see gatehouse call --help\)$/, name);
  }
});

test('call: a method the negotiated protocol version does not serve says which version the plugin chose, and how to offer another', async (t) => {
  // The worker plugin serves callback.Storage only in protocol version 2; the default offer is version 1.
  const worker = ['--cookie', 'GATEHOUSE_WORKER_PLUGIN=7c1d93e0-worker', '--proto', join(repoRoot, 'test/interop/callback.proto'), '--method', 'callback.Storage/Get', '--data', '{"key":"version"}'];
  const command = ['--', process.execPath, join(repoRoot, 'dist/test/fixtures/worker-plugin.js')];
  const result = await call([...worker, ...command]);
  t.is(result.code, 1, result.stderr);
  t.regex(failureLine(t, result), /^gatehouse call: callback\.Storage\/Get failed: UNIMPLEMENTED: .*the plugin does not serve it at protocol version 1, the one it chose: .*; this call offered protocol versions 1: a method of another version needs --protocol-version \(the plugin picks the highest both speak\)$/);
  const offered = await call([...worker, '--protocol-version', '1,2', ...command]);
  t.is(offered.code, 0, offered.stderr);
  t.deepEqual(stdoutLines(offered), [{ value: Buffer.from('2').toString('base64') }]);
});

test('call: a client-streaming method sends the --data array in order and prints its one answer; a bidi method prints an answer per message; a script line gives "requests"', async (t) => {
  const dir = await tempDir(t);
  const echo = await echoPlugin(dir);
  const args = ['--cookie', 'ECHO_PLUGIN=echo', '--proto', echo.proto];
  const collected = await call([...args, '--method', 'echo.Echo/Collect', '--data', JSON.stringify([{ small: 1, inners: [{ noteText: 'a' }] }, { small: 2, inners: [{ noteText: 'b' }] }]), ...echo.command]);
  t.is(collected.code, 0, collected.stderr);
  t.like(stdoutLines(collected)[0], { small: 2, inners: [{ noteText: 'a' }, { noteText: 'b' }] }, 'both sent, in order, in one call');
  const chat = await call([...args, '--method', 'echo.Echo/Chat', '--data', JSON.stringify([{ small: 1 }, { small: 2 }, { small: 3 }]), ...echo.command]);
  t.is(chat.code, 0, chat.stderr);
  t.deepEqual(stdoutLines(chat).map((line) => (line as { small?: number }).small), [1, 2, 3]);
  const none = await call([...args, '--method', 'echo.Echo/Collect', ...echo.command]);
  t.is(none.code, 0, none.stderr);
  t.is(stdoutLines(none).length, 1);
  t.like(stdoutLines(none)[0], { small: 0, inners: [] }, 'no --data: a stream of no requests, answered once');
  const script = join(dir, 'calls.jsonl');
  await writeFile(script, `${JSON.stringify({ method: 'echo.Echo/Chat', requests: [{ small: 7 }] })}\n${JSON.stringify({ method: 'echo.Echo/Echo', request: { small: 8 } })}\n`);
  const scripted = await call([...args, '--script', script, ...echo.command]);
  t.is(scripted.code, 0, scripted.stderr);
  t.deepEqual(stdoutLines(scripted).map((line) => (line as { small?: number }).small), [7, 8]);
  // The wrong shape is a usage error before the plugin starts.
  const single = await call([...args, '--method', 'echo.Echo/Collect', '--data', '{"small": 1}', ...echo.command]);
  t.is(single.code, 2);
  t.regex(single.stderr, /--data: Collect takes a stream of requests: give them as a JSON array/);
  await writeFile(script, `${JSON.stringify({ method: 'echo.Echo/Chat', request: { small: 7 } })}\n`);
  const wrongKey = await call([...args, '--script', script, ...echo.command]);
  t.is(wrongKey.code, 2);
  t.regex(wrongKey.stderr, /script line 1: echo\.Echo\/Chat takes a stream of requests: give "requests": \[\.\.\.\], not "request"/);
});

test('call: a request stream holds at most 10,000 requests, refused before the plugin starts', async (t) => {
  // Attack (on the CLI's memory): "{}," is 3 bytes of a script line but a parsed message and a queued write each; one
  // 4 MiB line of them (1.4 million requests) grew gatehouse call to 900 MB, and a 64 MiB script to many GB.
  const dir = await tempDir(t);
  const echo = await echoPlugin(dir);
  const { script: marker, marker: ran } = await markerScript(dir);
  const args = ['--cookie', 'ECHO_PLUGIN=echo', '--proto', echo.proto];
  const many = JSON.stringify(Array.from({ length: 10_001 }, () => ({})));
  const data = await call([...args, '--method', 'echo.Echo/Collect', '--data', many, '--', marker]);
  t.is(data.code, 2, data.stderr);
  t.regex(data.stderr, /--data: 10001 requests: a call sends at most 10000/);
  const script = join(dir, 'calls.jsonl');
  await writeFile(script, `${JSON.stringify({ method: 'echo.Echo/Chat', requests: Array.from({ length: 10_001 }, () => ({})) })}\n`);
  const scripted = await call([...args, '--script', script, '--', marker]);
  t.is(scripted.code, 2, scripted.stderr);
  t.regex(scripted.stderr, /script line 1: 10001 requests: a call sends at most 10000/);
  // Parsed up front, a script's calls are bounded together too: 11 lines of 10,000 each.
  const line = `${JSON.stringify({ method: 'echo.Echo/Chat', requests: Array.from({ length: 10_000 }, () => ({})) })}\n`;
  await writeFile(script, line.repeat(11));
  const longScript = await call([...args, '--script', script, '--', marker]);
  t.is(longScript.code, 2, longScript.stderr);
  t.regex(longScript.stderr, /script line 11: the script's calls send more than 100000 requests in all/);
  t.false(existsSync(ran), 'the plugin never started');
  const atLimit = await call([...args, '--method', 'echo.Echo/Collect', '--data', JSON.stringify(Array.from({ length: 10_000 }, () => ({}))), ...echo.command]);
  t.is(atLimit.code, 0, atLimit.stderr);
});

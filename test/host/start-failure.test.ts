// The library's own diagnoses, for every caller of launch() (the CLI only prints them): a rejected
// cookie, a plugin that needs TLS, the line that names a crash, and the stderr tail on every PLUGIN_EXITED.
import test from 'ava';
import { isGatehouseError, launch, silentLogger, type GatehouseError, type LaunchOptions } from '../../src/index.js';
import { errorLine, PluginStderr } from '../../src/host/plugin-output.js';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { fakePluginScript, kvPluginScript } from '../helpers/paths.js';
import { recordingLogger } from '../helpers/recording-logger.js';

const kvService = loadKVService();
const kvPlugin: LaunchOptions = { command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE };

test('a wrong magic cookie is COOKIE_MISMATCH naming the key, never the value', async (t) => {
  const error = await t.throwsAsync(launch({ ...kvPlugin, cookie: { key: KV_COOKIE.key, value: 'not-the-value' } }));
  t.true(isGatehouseError(error, 'COOKIE_MISMATCH'), String(error));
  t.regex(error?.message ?? '', /rejected the magic cookie GATEHOUSE_KV_PLUGIN .*exit code 1.*HandshakeConfig/);
  t.false(error?.message.includes('not-the-value'));
  t.deepEqual((error as GatehouseError).details.exitStatus, { code: 1, signal: null });
  t.true(((error as GatehouseError).details.stderrTail ?? []).some((line) => line.startsWith('This binary is a plugin')));
});

test('insecurePlaintext against a plugin that requires TLS is PLAINTEXT_REFUSED, without raw hclog JSON', async (t) => {
  const error = await t.throwsAsync(launch({ ...kvPlugin, insecurePlaintext: true }));
  t.true(isGatehouseError(error, 'PLAINTEXT_REFUSED'), String(error));
  t.regex(error?.message ?? '', /requires mutual TLS, so drop insecurePlaintext/);
  t.regex(error?.message ?? '', /PLUGIN_CLIENT_CERT/, 'it quotes what the plugin said');
  t.false(error?.message.includes('"@level"'), error?.message);
});

test('a plugin that crashes before its handshake is PLUGIN_EXITED naming the error line, not Node\'s version footer', async (t) => {
  const crash = "throw new Error('boom: no configuration')";
  const error = await t.throwsAsync(launch({ command: process.execPath, args: ['-e', crash], cookie: KV_COOKIE }));
  t.true(isGatehouseError(error, 'PLUGIN_EXITED'), String(error));
  const [first] = (error?.message ?? '').split('\n');
  t.is(first, 'plugin exited before its handshake (exit code 1); the plugin said: "Error: boom: no configuration"');
  const tail = (error as GatehouseError).details.stderrTail ?? [];
  t.regex(tail.at(-1) ?? '', /^Node\.js v\d/, 'the last line was the footer; the message names the error instead');
});

test('a plugin that crashes mid-call: PLUGIN_EXITED with its stderr tail, and its last words logged at warn', async (t) => {
  const logger = recordingLogger();
  const plugin = await launch({ command: process.execPath, args: [fakePluginScript], cookie: KV_COOKIE, logger, env: { FAKE_MODE: 'hostile-kv' } });
  const error = await t.throwsAsync(plugin.client(kvService).Get({ key: 'throw' }));
  t.true(isGatehouseError(error, 'PLUGIN_EXITED'), String(error));
  t.regex(error?.message ?? '', /the plugin said: "Error: boom: the store is corrupt"/);
  t.true(((error as GatehouseError).details.stderrTail ?? []).some((line) => line.includes('boom: the store is corrupt')));
  await plugin.exited;
  const warning = logger.records.find((record) => record.level === 'warn' && /exited unexpectedly/.test(record.message));
  t.regex(warning?.message ?? '', /exit code 1; the plugin said: "Error: boom: the store is corrupt"/);
  t.true(Array.isArray(warning?.fields.stderrTail), 'the crash output is in the warning');
  // A later call fails at once, with the same tail.
  const later = await t.throwsAsync(plugin.client(kvService).Get({ key: 'x' }));
  t.true(((later as GatehouseError).details.stderrTail ?? []).length > 0);
  await plugin.kill();
});

test('a plugin that cannot start under its limits is told so, naming them, in place of its runtime\'s words alone', async (t) => {
  // Too few descriptors for Node's own start: it dies in libuv ("Assertion failed: ... uv_loop_init"), naming no limit.
  const error = await t.throwsAsync(launch({ ...kvPlugin, limits: { openFiles: 12 } }));
  t.true(isGatehouseError(error, 'PLUGIN_EXITED'), String(error));
  t.regex(error?.message ?? '', /^plugin ran out of memory or file descriptors before its handshake \(killed by SIG\w+\) under limits openFiles 12: raise them/);
  t.true(((error as GatehouseError).details.stderrTail ?? []).length > 0);
});

test('errorLine: picks the line that names the error in the crash output of Node, Python and Go', (t) => {
  const node = ['/p/plugin.js:3', "throw new Error('x')", '^', '', 'Error: x', '    at Object.<anonymous> (/p/plugin.js:3:7)', "  code: 'E_X'", '}', '', 'Node.js v20.20.2'];
  t.is(errorLine(node), 'Error: x');
  const python = ['Traceback (most recent call last):', '  File "/p/kv_plugin.py", line 14, in <module>', '    import grpc', "ModuleNotFoundError: No module named 'grpc'"];
  t.is(errorLine(python), "ModuleNotFoundError: No module named 'grpc'");
  const go = ['panic: runtime error: index out of range [3] with length 3', '', 'goroutine 1 [running]:', 'main.main()', '\t/p/main.go:9 +0x1d'];
  t.is(errorLine(go), 'panic: runtime error: index out of range [3] with length 3');
  const hclog = ['{"@level":"error","@message":"plugin failed to start: no PLUGIN_CLIENT_CERT"}', '{"@level":"info","@message":"bye"}'];
  t.is(errorLine(hclog), 'plugin failed to start: no PLUGIN_CLIENT_CERT');
  t.is(errorLine(['starting', 'boom: no configuration']), 'boom: no configuration');
  t.is(errorLine([]), undefined);
  t.is(errorLine(['{"@level":"debug","@message":"plugin address"}', '{"@level":"info","@message":"serving"}']), undefined, 'routine records are not last words');
  t.is(errorLine(['\u001b[2Jforged\nline']), '\\u001b[2Jforged\\nline', 'what a plugin wrote is made one visible line');
});

test('errorLine: a crash after an error the plugin logged and survived quotes the crash, not the older log record', (t) => {
  // A go-plugin plugin logs a failed call through hclog, keeps serving, then panics: the panic is why it died.
  const go = [
    '{"@level":"error","@message":"sum through host","@module":"counter"}',
    'panic: assignment to entry in nil map',
    '',
    'goroutine 54 [running]:',
    'main.(*counter).Crash.func1()',
  ];
  t.is(errorLine(go), 'panic: assignment to entry in nil map');
  // The same for a Node plugin: its logger recorded a handled error, then an uncaught exception ended it.
  const node = ['{"@level":"error","@message":"put failed"}', 'file:///p/plugin.js:25', '', 'Error: counter state corrupted', '    at Timeout._onTimeout (file:///p/plugin.js:25:65)', '', 'Node.js v20.20.2'];
  t.is(errorLine(node), 'Error: counter state corrupted');
  // An error record after the last error-shaped line is still what the plugin said last.
  t.is(errorLine(['Error: an old one', '{"@level":"error","@message":"plugin failed to start: no PLUGIN_CLIENT_CERT"}']), 'plugin failed to start: no PLUGIN_CLIENT_CERT');
});

test('errorLine: names what a native Node or V8 crash says, as Node dies of a resource limit before any JavaScript runs', (t) => {
  // limits.openFiles too low for Node's own start (captured from Node 20 under prlimit --nofile=12).
  const assertion = [
    '',
    '  #  /usr/bin/node[31394]: void node::WorkerThreadsTaskRunner::DelayedTaskScheduler::Run() at ../src/node_platform.cc:90',
    '  #  Assertion failed: (0) == (uv_loop_init(&loop_))',
    '',
    '----- Native stack trace -----',
    '',
    ' 1: 0xcb5167 node::Assert(node::AssertionInfo const&) [/usr/bin/node]',
    ' 4: 0x7fc9009278ec  [/lib/x86_64-linux-gnu/libc.so.6]',
  ];
  t.is(errorLine(assertion), 'Assertion failed: (0) == (uv_loop_init(&loop_))');
  // limits.memoryBytes below what V8 reserves to start (prlimit --as=1000000000).
  const oom = ['', '#', '# Fatal process OOM in Failed to reserve virtual memory for CodeRange', '#', ''];
  t.is(errorLine(oom), 'Fatal process OOM in Failed to reserve virtual memory for CodeRange');
});

test('a plain stderr line that starts with [TRACE] .. [ERROR] is logged at that level, as go-plugin hosts do; other plain lines at debug', (t) => {
  // Go plugins that log with the standard library's log package (log.SetFlags(0); log.Printf("[WARN] ...")).
  const logger = recordingLogger();
  const stderr = new PluginStderr('legacy', logger);
  for (const line of ['[TRACE] t', '[DEBUG] d', '[INFO] i', '[WARN] disk almost full', '[ERROR] cannot open the store', 'plain', '[warn] not a prefix go-plugin reads', ' [ERROR] neither']) {
    stderr.line(line, false);
  }
  t.deepEqual(
    logger.records.map((record) => [record.level, record.message]),
    [
      ['trace', '[TRACE] t'],
      ['debug', '[DEBUG] d'],
      ['info', '[INFO] i'],
      ['warn', '[WARN] disk almost full'],
      ['error', '[ERROR] cannot open the store'],
      ['debug', 'plain'],
      ['debug', '[warn] not a prefix go-plugin reads'],
      ['debug', ' [ERROR] neither'],
    ],
  );
  t.like(logger.records[3]?.fields, { plugin: 'legacy', stream: 'stderr' });
  // And the crash diagnosis reads them the same way: an [ERROR] line is what the plugin said, an [INFO] line is routine.
  t.is(errorLine(['[ERROR] cannot open the store', '[INFO] shutting down']), '[ERROR] cannot open the store');
});

test("a Node plugin's pino lines keep their levels on the host, under the entry file's name", async (t) => {
  const logger = recordingLogger();
  const plugin = await launch({ command: process.execPath, args: [fakePluginScript], cookie: KV_COOKIE, logger, env: { FAKE_MODE: 'pino' } });
  t.is(plugin.name, 'fake-plugin.js', 'named by its entry file, not "node"');
  await plugin.kill();
  const pino = logger.records.filter((record) => record.message.startsWith('pino '));
  t.deepEqual(
    pino.map((record) => [record.level, record.message]),
    [['trace', 'pino trace'], ['debug', 'pino debug'], ['info', 'pino info'], ['warn', 'pino warn'], ['error', 'pino error'], ['error', 'pino fatal']],
  );
  t.like(pino[2]?.fields, { plugin: 'fake-plugin.js', module: 'kv', pluginTime: '2026-12-02T03:04:05.678Z', fields: { key: 'k' } });
});

test('describe: routine records are not quoted as last words, but a failed start still shows them', (t) => {
  const stderr = new PluginStderr('p', silentLogger);
  t.is(stderr.describe(), '', 'nothing written, nothing said');
  stderr.line('{"@level":"info","@message":"listening"}', false);
  t.is(stderr.said(), '');
  t.is(stderr.describe(), '\nlast stderr lines:\n  info: listening');
  stderr.line('fatal: out of cheese', false);
  t.regex(stderr.describe(), /^; the plugin said: "fatal: out of cheese"\nlast stderr lines:\n {2}info: listening\n {2}fatal: out of cheese$/);
});

test('a log record nested 30,000 deep reaches a logger that serializes it cut at 16 levels, not as a stack overflow that kills the host', (t) => {
  const serialized: string[] = [];
  // A JSON-lines logger, as hosts commonly write one: JSON.stringify is recursive.
  const jsonLines = (fields: Record<string, unknown>, message: string) => void serialized.push(JSON.stringify({ ...fields, message }));
  const logger = { trace: jsonLines, debug: jsonLines, info: jsonLines, warn: jsonLines, error: jsonLines };
  const stderr = new PluginStderr('p', logger);
  const deep = `${'['.repeat(30_000)}${']'.repeat(30_000)}`;
  t.notThrows(() => stderr.line(`{"@level":"info","@message":"hclog","deep":${deep}}`, false));
  t.notThrows(() => stderr.line(`{"level":30,"msg":"pino","deep":${deep},"flat":{"a":1}}`, false));
  t.is(serialized.length, 2);
  const kept = `${'['.repeat(15)}"[nested too deep]"${']'.repeat(15)}`;
  t.true(serialized.every((line) => line.includes(`"deep":${kept}`)), serialized.map((line) => line.slice(0, 120)).join('\n'));
  t.true(serialized[1]!.includes('"flat":{"a":1}'), 'shallow fields pass unchanged');
});

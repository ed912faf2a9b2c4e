// A KV host in TypeScript: launches the KV plugin over mutual TLS, does Put and Get, and kills it.
//   node dist/examples/kv/host.js [PLUGIN_COMMAND ARGS...]   (default: this repo's TypeScript KV plugin)
import { fileURLToPath } from 'node:url';
import { launch, type Logger } from '../../src/index.js';
import { KV_COOKIE, loadKVService } from './kv.js';

const say = (text: string): void => void process.stdout.write(`${text}\n`);
const pluginLogs: Logger = {
  trace: () => {},
  debug: () => {},
  info: (fields, message) => say(`  plugin log (info): ${message} ${JSON.stringify(fields.fields ?? {})}`),
  warn: (_fields, message) => say(`  plugin log (warn): ${message}`),
  error: (_fields, message) => say(`  plugin log (error): ${message}`),
};

const [command, ...args] =
  process.argv.length > 2
    ? process.argv.slice(2)
    : [process.execPath, fileURLToPath(new URL('./plugin.js', import.meta.url))];

const started = performance.now();
const plugin = await launch({ command: command as string, args, cookie: KV_COOKIE, logger: pluginLogs });
say(`launched ${plugin.name} (pid ${plugin.pid}) in ${(performance.now() - started).toFixed(0)} ms`);
say(`  protocol version ${plugin.protocolVersion}, ${plugin.network} socket ${plugin.address}`);
say(`  mutual TLS; plugin certificate pinned, sha256 ${plugin.certificateSha256}`);

const kv = plugin.client(loadKVService());
await kv.Put({ key: 'greeting', value: Buffer.from('hello from gatehouse') });
say(`Put greeting = "hello from gatehouse"`);
const { value } = await kv.Get({ key: 'greeting' });
say(`Get greeting -> "${value.toString()}"`);

const status = await plugin.kill();
say(`killed plugin: ${status.signal ?? `exit code ${status.code}`}`);

// gatehouse-secrets: a Vault-like secrets server whose engines are signed gatehouse plugins.
//   node dist/examples/secrets-server/main.js init --home DIR --manifest FILE --keys DIR [--port N]
//        [--threshold K] [--sandbox auto|required|off] [--plugin-user UID:GID]      (prints the root token, once)
//   node dist/examples/secrets-server/main.js serve --home DIR [--port N]
//   node dist/examples/secrets-server/main.js release --out DIR --key FILE [--key FILE...] --manifest-version N
//        [--expires-in DAYS] --engine kv@1.0.0 ...
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readSecretKeyFile, type MinisignSecretKey } from 'gatehouse-plugins';
import { initHome } from './config.js';
import { buildRelease } from './release.js';
import { startServer } from './server.js';

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const [command, ...rest] = process.argv.slice(2);
const USAGE = 'usage: gatehouse-secrets init|serve|release [options] (see the README)';
// An unknown or malformed option is a usage error (exit 2) naming it, never a stack trace.
const { values } = (() => {
  try {
    return parseArgs({
      args: rest,
      options: {
        home: { type: 'string' },
        manifest: { type: 'string' },
        keys: { type: 'string' },
        port: { type: 'string' },
        sandbox: { type: 'string' },
        'plugin-user': { type: 'string' },
        out: { type: 'string' },
        key: { type: 'string', multiple: true },
        threshold: { type: 'string' },
        'expires-in': { type: 'string' },
        'manifest-version': { type: 'string' },
        engine: { type: 'string', multiple: true },
      },
    });
  } catch (error) {
    process.stderr.write(`gatehouse-secrets: ${error instanceof Error ? error.message : String(error)}\n${USAGE}\n`);
    process.exit(2);
  }
})();
const need = (name: keyof typeof values): string => {
  const value = values[name];
  if (typeof value !== 'string' && !(Array.isArray(value) && value.length > 0)) {
    process.stderr.write(`gatehouse-secrets ${command ?? ''}: --${name} is required\n`);
    process.exit(2);
  }
  return value as string;
};
/** A whole number option, or a usage error naming it (Number('') and Number('2x') would pass for 0 and NaN). */
const count = (name: 'threshold' | 'expires-in' | 'manifest-version'): number | undefined => {
  const value = values[name];
  if (value === undefined) return undefined;
  if (!/^[1-9]\d{0,8}$/.test(value)) {
    process.stderr.write(`gatehouse-secrets ${command ?? ''}: --${name} must be a positive whole number, got ${JSON.stringify(value)}\n`);
    process.exit(2);
  }
  return Number(value);
};
const port = values.port === undefined ? undefined : Number(values.port);

try {
  switch (command) {
    case 'init': {
      const user = values['plugin-user']?.split(':').map(Number);
      const threshold = count('threshold');
      const { rootToken } = await initHome({
        home: resolve(need('home')),
        release: { manifest: resolve(need('manifest')), trustedKeysDir: resolve(need('keys')), ...(threshold !== undefined ? { threshold } : {}) },
        ...(port !== undefined ? { port } : {}),
        ...(values.sandbox ? { sandbox: values.sandbox as 'auto' | 'required' | 'off' } : {}),
        ...(user && user.length === 2 ? { pluginUser: { uid: user[0] as number, gid: user[1] as number } } : {}),
      });
      say(`root token (shown once, stored only hashed): ${rootToken}`);
      break;
    }
    case 'serve': {
      const server = await startServer({ home: resolve(need('home')), ...(port !== undefined ? { port } : {}), say });
      say(`listening on ${server.url}`);
      const stop = () =>
        void server.close().then(
          () => process.exit(0),
          (error: unknown) => {
            process.stderr.write(`gatehouse-secrets: stopping failed: ${String(error)}\n`);
            process.exit(1);
          },
        );
      // `on`, not `once`: while a handler of ours is registered, the library's exit hook leaves the
      // engines to this graceful stop instead of SIGKILLing them and re-raising the signal.
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      break;
    }
    case 'release': {
      const engines = (values.engine ?? []).map((spec) => {
        const [engine = '', version = ''] = spec.split('@');
        return { engine, version };
      });
      need('key');
      const [secretKey, ...cosigners] = await Promise.all((values.key ?? []).map((file) => readSecretKeyFile(file)));
      const days = count('expires-in');
      need('manifest-version');
      const { manifestPath } = await buildRelease({
        outDir: resolve(need('out')),
        engines,
        secretKey: secretKey as MinisignSecretKey,
        cosigners,
        manifestVersion: count('manifest-version') as number,
        ...(days !== undefined ? { expires: new Date(Date.now() + days * 86_400_000) } : {}),
      });
      say(`signed release: ${manifestPath}`);
      break;
    }
    default:
      process.stderr.write(`${USAGE}\n`);
      process.exit(2);
  }
} catch (error) {
  process.stderr.write(`gatehouse-secrets ${command}: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}

// A real secrets server on a throwaway home, with a release signed by a fresh key, for end-to-end tests.
import { cp, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { generateKeyPair, writeKeyPair } from 'gatehouse-plugins';
import { initHome, type ServerConfig } from '../../examples/secrets-server/config.js';
import { buildRelease, type EngineBuild } from '../../examples/secrets-server/release.js';
import { startServer, type RunningServer } from '../../examples/secrets-server/server.js';

export const misbehavingEngine = fileURLToPath(new URL('../fixtures/misbehaving-engine.js', import.meta.url));

export const DEFAULT_ENGINES: EngineBuild[] = [
  { engine: 'kv', version: '1.0.0' },
  { engine: 'kv', version: '1.1.0' },
  { engine: 'transit', version: '1.0.0' },
  { engine: 'bad', version: '1.0.0', entryPoint: misbehavingEngine },
];

export interface TestServer {
  server: RunningServer;
  root: string;
  home: string;
  files: Record<string, string>;
  lines: string[];
  token: string;
  restart(): Promise<RunningServer>;
  api(method: string, path: string, body?: unknown, options?: { token?: string | null; raw?: string | Buffer }): Promise<{ status: number; json: Record<string, any> }>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One signed release per test file (bundling is the slow part); each server gets its own copy. */
let shared: Promise<{ dir: string; trusted: string; fileNames: Record<string, string> }> | undefined;
let sharedDir: string | undefined;
// Registered as the harness is imported: ava takes hooks only while the test file is being loaded.
test.after.always(() => (sharedDir ? rm(sharedDir, { recursive: true, force: true }) : undefined));
function sharedRelease(engines: EngineBuild[]) {
  shared ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gatehouse-secrets-release-'));
    sharedDir = dir;
    const key = generateKeyPair();
    await mkdir(join(dir, 'signing'), { mode: 0o700 });
    await mkdir(join(dir, 'trusted'));
    const { publicKeyPath } = await writeKeyPair(join(dir, 'signing', 'release'), key);
    await copyFile(publicKeyPath, join(dir, 'trusted', 'release.pub'));
    const { files } = await buildRelease({ outDir: join(dir, 'release'), engines, secretKey: key.secretKey, manifestVersion: 1 });
    return { dir, trusted: join(dir, 'trusted'), fileNames: Object.fromEntries(Object.entries(files).map(([name, path]) => [name, basename(path)])) };
  })();
  return shared;
}

export async function startTestServer(
  t: ExecutionContext,
  options: { engines?: EngineBuild[]; limits?: Partial<ServerConfig['limits']> } = {},
): Promise<TestServer> {
  const root = await mkdtemp(join(tmpdir(), 'gatehouse-secrets-test-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const release = await sharedRelease(options.engines ?? DEFAULT_ENGINES);
  await cp(join(release.dir, 'release'), join(root, 'release'), { recursive: true });
  const manifestPath = join(root, 'release', 'manifest.json');
  const files = Object.fromEntries(Object.entries(release.fileNames).map(([name, file]) => [name, join(root, 'release', file)]));
  const home = join(root, 'home');
  const { rootToken } = await initHome({ home, release: { manifest: manifestPath, trustedKeysDir: release.trusted }, port: 0 });
  if (options.limits) {
    const path = join(home, 'config.json');
    const config = JSON.parse(await readFile(path, 'utf8')) as ServerConfig;
    config.limits = { ...config.limits, ...options.limits };
    await writeFile(path, JSON.stringify(config));
  }
  const lines: string[] = [];
  const server = await startServer({ home, say: (line) => lines.push(line) });
  t.teardown(() => server.close());
  // A server restarted on the same home (to test what persists); the first one must be closed.
  let url = server.url;
  const restart = async () => {
    const next = await startServer({ home, say: (line) => lines.push(line) });
    t.teardown(() => next.close());
    url = next.url;
    return next;
  };
  const api: TestServer['api'] = async (method, path, body, extra = {}) => {
    const token = extra.token === undefined ? rootToken : extra.token;
    const response = await fetch(url + path, {
      method,
      headers: { ...(token === null ? {} : { 'x-vault-token': token }), 'content-type': 'application/json' },
      ...(extra.raw !== undefined ? { body: extra.raw } : body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, json: text ? JSON.parse(text) : {} };
  };
  return { server, root, home, files, lines, token: rootToken, api, restart };
}

/**
 * Sends `request` byte for byte over a fresh connection (what fetch refuses to send: malformed targets,
 * bodies cut short) and returns everything the server wrote until it closed the connection. With
 * `keepOpen` the client's side stays open, as a client still owing the rest of a body would.
 */
export function rawRequest(url: string, request: string | Buffer, options: { keepOpen?: boolean } = {}): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(Number(port), hostname, () => (options.keepOpen ? socket.write(request) : socket.end(request)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.once('error', reject);
  });
}

/** The host/request records of a server's audit log (read after the server closed it). */
export async function auditedRequests(home: string): Promise<Array<Record<string, unknown>>> {
  const log = await readFile(join(home, 'audit.jsonl'), 'utf8');
  return log
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { type: string; action?: string; fields?: Record<string, unknown> })
    .filter((record) => record.type === 'host' && record.action === 'request')
    .map((record) => record.fields ?? {});
}

// Builds the Go interop fixtures (kvhost, kvplugin, brokerhost, brokerplugin, yamuxpeer, secretsengine) and the bench's Go side
// (kvbench, securehash) into dist/interop-go/bin.
//
// Run as `node dist/test/interop/build-go.js` after tsc. It builds in GOPATH
// mode against the Debian packaged go-plugin 1.0.1 (no network, no modules):
//
//   dist/interop-go/gopath/src/gatehouse/kv/kv.pb.go    protoc output for examples/kv/kv.proto
//   dist/interop-go/gopath/src/gatehouse/callback/callback.pb.go    the same for test/interop/callback.proto
//   dist/interop-go/gopath/src/gatehouse/secrets/engine.pb.go    the same for examples/secrets-server/engine.proto
//   dist/interop-go/gopath/src/gatehouse/cmd/<binary>/main.go    copied from test/interop/go
//   dist/interop-go/gopath/src/gatehouse/fixture/fixture.go     what the binaries share, likewise
//   dist/interop-go/cache                                GOCACHE
//
// Without go, protoc, protoc-gen-go or the go-plugin sources it prints one line
// and exits 0, unless CI=true, where it exits 1.
import { execFile } from 'node:child_process';
import {
  accessSync,
  constants,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const outDir = path.join(repoRoot, 'dist', 'interop-go');
const binDir = path.join(outDir, 'bin');
const gopath = path.join(outDir, 'gopath');
const cacheDir = path.join(outDir, 'cache');
const stampFile = path.join(binDir, 'build-stamp.json');

const goSourceDir = path.join(repoRoot, 'test', 'interop', 'go');
const kvProto = path.join(repoRoot, 'examples', 'kv', 'kv.proto');
const callbackProto = path.join(repoRoot, 'test', 'interop', 'callback.proto');
const engineProto = path.join(repoRoot, 'examples', 'secrets-server', 'engine.proto');
const thisSource = path.join(repoRoot, 'test', 'interop', 'build-go.ts');
const binaries = ['kvhost', 'kvplugin', 'brokerhost', 'brokerplugin', 'yamuxpeer', 'kvbench', 'securehash', 'secretsengine', 'grpcpeer'] as const;

/** Where the packaged Go sources (go-plugin and its dependencies) live. */
const gocode = process.env.GATEHOUSE_GOCODE ?? '/usr/share/gocode';
const goPluginDir = path.join(gocode, 'src', 'github.com', 'hashicorp', 'go-plugin');

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') {
      continue;
    }
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) {
        return candidate;
      }
    } catch {
      // not here
    }
  }
  return undefined;
}

function goFilesUnder(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      files.push(...goFilesUnder(full));
    } else if (entry.isFile() && entry.name.endsWith('.go')) {
      files.push(full);
    }
  }
  return files;
}

function mtimeMs(file: string): number | undefined {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Debian's package version of go-plugin, without the Debian revision. */
async function goPluginVersion(): Promise<string> {
  try {
    const { stdout } = await execFileAsync(
      'dpkg-query',
      ['-W', '-f=${Version}', 'golang-github-hashicorp-go-plugin-dev'],
      { env: { PATH: process.env.PATH ?? '' } },
    );
    const version = stdout.trim().replace(/-[^-]*$/, '');
    if (version !== '') {
      return version;
    }
  } catch {
    // not a Debian package: fall through
  }
  return '(unknown version)';
}

function upToDate(stamp: string): boolean {
  const sources = [...goFilesUnder(goSourceDir), kvProto, callbackProto, engineProto, thisSource];
  const newestSource = Math.max(...sources.map((file) => mtimeMs(file) ?? Number.POSITIVE_INFINITY));
  const oldestBinary = Math.min(
    ...binaries.map((name) => mtimeMs(path.join(binDir, name)) ?? Number.NEGATIVE_INFINITY),
  );
  if (!(oldestBinary > newestSource)) {
    return false;
  }
  try {
    return readFileSync(stampFile, 'utf8') === stamp;
  } catch {
    return false;
  }
}

function toolchainMissing(what: string[]): never {
  const detail = `missing ${what.join(', ')}`;
  if (process.env.CI === 'true') {
    console.error(
      `interop: Go toolchain not found (${detail}) and CI=true: the Go interop tests cannot run. ` +
        'Install golang-go, protobuf-compiler, golang-goprotobuf-dev and golang-github-hashicorp-go-plugin-dev.',
    );
    process.exit(1);
  }
  if (binaries.every((name) => existsSync(path.join(binDir, name)))) {
    console.log(`interop: Go toolchain not found (${detail}), keeping the binaries already in dist/interop-go/bin`);
  } else {
    console.log('interop: Go toolchain not found, Go interop tests will be skipped');
  }
  process.exit(0);
}

async function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  try {
    const { stdout } = await execFileAsync(file, args, { env, cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const failure = error as { stderr?: string; message: string };
    const output = failure.stderr?.trim() || failure.message;
    throw new Error(`${path.basename(file)} ${args.join(' ')} failed:\n${output}`);
  }
}

async function main(): Promise<void> {
  const go = findOnPath('go');
  const protoc = findOnPath('protoc');
  const protocGenGo = findOnPath('protoc-gen-go');
  const missing = [
    ...(go ? [] : ['go']),
    ...(protoc ? [] : ['protoc']),
    ...(protocGenGo ? [] : ['protoc-gen-go']),
    ...(existsSync(path.join(goPluginDir, 'client.go')) ? [] : [`go-plugin sources in ${gocode}`]),
  ];
  if (go === undefined || protoc === undefined || missing.length > 0) {
    toolchainMissing(missing);
  }

  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? os.tmpdir(),
    GOCACHE: cacheDir,
    GO111MODULE: 'off',
    GOPATH: [gopath, gocode].join(path.delimiter),
    GOFLAGS: '',
    CGO_ENABLED: '0',
  };
  if (process.env.TMPDIR !== undefined) {
    env.TMPDIR = process.env.TMPDIR;
  }

  const goVersion = (await run(go, ['env', 'GOVERSION'], env)).trim();
  const pluginVersion = await goPluginVersion();
  const stamp = JSON.stringify({ go: goVersion, goPlugin: pluginVersion, gocode });
  const toolchain = `${goVersion} and go-plugin ${pluginVersion}`;

  if (upToDate(stamp)) {
    console.log(`interop: ${binaries.join(', ')} are up to date (${toolchain})`);
    return;
  }

  const started = performance.now();
  const kvPackageDir = path.join(gopath, 'src', 'gatehouse', 'kv');
  const callbackPackageDir = path.join(gopath, 'src', 'gatehouse', 'callback');
  const secretsPackageDir = path.join(gopath, 'src', 'gatehouse', 'secrets');
  const cmdDir = path.join(gopath, 'src', 'gatehouse', 'cmd');
  rmSync(path.join(gopath, 'src', 'gatehouse'), { recursive: true, force: true });
  mkdirSync(kvPackageDir, { recursive: true });
  mkdirSync(callbackPackageDir, { recursive: true });
  mkdirSync(secretsPackageDir, { recursive: true });
  mkdirSync(binDir, { recursive: true });
  mkdirSync(cacheDir, { recursive: true });

  await run(
    protoc,
    [`--proto_path=${path.dirname(kvProto)}`, `--go_out=plugins=grpc:${kvPackageDir}`, kvProto],
    env,
  );
  await run(
    protoc,
    [`--proto_path=${path.dirname(callbackProto)}`, `--go_out=plugins=grpc:${callbackPackageDir}`, callbackProto],
    env,
  );
  await run(
    protoc,
    [`--proto_path=${path.dirname(engineProto)}`, `--go_out=plugins=grpc:${secretsPackageDir}`, engineProto],
    env,
  );
  // Binaries go under gatehouse/cmd; the package they share is gatehouse/fixture.
  const fixtureDir = path.join(goSourceDir, 'fixture');
  cpSync(goSourceDir, cmdDir, { recursive: true, filter: (source) => !source.startsWith(fixtureDir) });
  cpSync(fixtureDir, path.join(gopath, 'src', 'gatehouse', 'fixture'), { recursive: true });

  rmSync(stampFile, { force: true });
  await run(
    go,
    ['build', '-o', binDir + path.sep, ...binaries.map((name) => `gatehouse/cmd/${name}`)],
    env,
  );
  // go build may leave an unchanged output untouched: mark the binaries as fresh.
  const now = new Date();
  for (const name of binaries) {
    utimesSync(path.join(binDir, name), now, now);
  }
  writeFileSync(stampFile, stamp);

  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`interop: built ${binaries.join(', ')} with ${toolchain} in ${seconds}s`);
}

main().catch((error: unknown) => {
  console.error(`interop: Go build failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});

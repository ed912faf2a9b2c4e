// Where the Go interop fixtures (built by build-go.ts) live, and how tests use them.
//
// Tests register through goTest so that a missing Go toolchain can never
// silently skip them under CI=true, and is visible when it skips them locally:
//
//   goTest('a gatehouse host drives the Go plugin', async (t, go) => {
//     // go.kvhost and go.kvplugin are absolute paths
//   });
//
// Inside a test registered with plain `test`, requireGoOrSkip(t) gives the
// same guarantees.
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';

export interface GoBinaries {
  /** go-plugin 1.0.1 host: `kvhost [-reattach-test] -- COMMAND [ARGS...]`. */
  readonly kvhost: string;
  /** go-plugin 1.0.1 gRPC plugin serving KV, handshake GATEHOUSE_KV_PLUGIN=d41f0b3c-kv. */
  readonly kvplugin: string;
  /** go-plugin 1.0.1 host using the broker both ways: `brokerhost [-versions 1,2] -- COMMAND [ARGS...]`. */
  readonly brokerhost: string;
  /** go-plugin 1.0.1 Worker plugin using the broker both ways, versions 1 and 2 (callback.proto). */
  readonly brokerplugin: string;
  /** One end of a hashicorp/yamux session: `yamuxpeer -role server|client -socket PATH`. */
  readonly yamuxpeer: string;
  /** go-plugin 1.0.1 secrets engine for the secrets server (examples/secrets-server/engine.proto). */
  readonly secretsengine: string;
  /** A plain grpc-go server (kv.KV and the streams of stream.S) for the lean client's conformance tests: `grpcpeer -socket PATH`. */
  readonly grpcpeer: string;
}

/** The repository root, resolved from this module compiled into dist/test/interop/. */
export const repoRoot: string = fileURLToPath(new URL('../../..', import.meta.url));

/** Everything the Go build writes lives here. */
export const interopGoDir: string = path.join(repoRoot, 'dist', 'interop-go');
export const goBinDir: string = path.join(interopGoDir, 'bin');

/** CI=true turns a missing toolchain into a failure instead of a skip. */
export const goRequired: boolean = process.env.CI === 'true';

export const goMissingMessage =
  'Go interop binaries not found in dist/interop-go/bin: install Go 1.19, protoc, protoc-gen-go and ' +
  'go-plugin 1.0.1 (Debian: golang-go protobuf-compiler golang-goprotobuf-dev golang-github-hashicorp-go-plugin-dev), ' +
  'then run `node dist/test/interop/build-go.js`';

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function findGoBinaries(): GoBinaries | undefined {
  const binaries: GoBinaries = {
    kvhost: path.join(goBinDir, 'kvhost'),
    kvplugin: path.join(goBinDir, 'kvplugin'),
    brokerhost: path.join(goBinDir, 'brokerhost'),
    brokerplugin: path.join(goBinDir, 'brokerplugin'),
    yamuxpeer: path.join(goBinDir, 'yamuxpeer'),
    secretsengine: path.join(goBinDir, 'secretsengine'),
    grpcpeer: path.join(goBinDir, 'grpcpeer'),
  };
  return Object.values(binaries).every(executable) ? binaries : undefined;
}

/** Absolute paths of the fixtures if all are built, else undefined. */
export const goBinaries: GoBinaries | undefined = findGoBinaries();

/**
 * For use inside a test: returns the binaries, or, when they are missing,
 * fails the test under CI=true, and otherwise logs a visible skip line and
 * passes. The caller returns early on undefined.
 */
export function requireGoOrSkip(t: ExecutionContext): GoBinaries | undefined {
  if (goBinaries) {
    return goBinaries;
  }
  if (goRequired) {
    t.fail(`CI=true: ${goMissingMessage}`);
  } else {
    t.log('skipped: Go toolchain not found');
    t.pass();
  }
  return undefined;
}

let skipNoticeRegistered = false;

/**
 * Registers a test that needs the Go fixtures. With the binaries present it is
 * an ordinary test. Without them it fails under CI=true; locally it is
 * registered as skipped, and the first such test in a file also registers one
 * passing test that logs `skipped: Go toolchain not found`.
 */
export function goTest(
  title: string,
  implementation: (t: ExecutionContext, go: GoBinaries) => Promise<void> | void,
): void {
  const go = goBinaries;
  if (go) {
    test(title, (t) => implementation(t, go));
    return;
  }
  if (goRequired) {
    test(title, (t) => {
      t.fail(`CI=true: ${goMissingMessage}`);
    });
    return;
  }
  if (!skipNoticeRegistered) {
    skipNoticeRegistered = true;
    test('Go interop fixtures are not built', (t) => {
      t.log('skipped: Go toolchain not found');
      t.pass();
    });
  }
  test.skip(title, () => undefined);
}

// `npm run bench`: gatehouse measured side by side with go-plugin 1.0.1 in one run (issue 6).
//
//   node dist/bench/main.js [--quick] [--out FILE] [--profile DIR] [--only SCENARIOS] [--markdown]
//   node dist/bench/main.js --from FILE --markdown      re-render a results file as Markdown
//
// --quick      a few iterations of everything (CI runs it so that the bench cannot rot)
// --out        results file (default bench/results/latest.json)
// --profile    run every gatehouse host and gatehouse plugin under `node --cpu-prof` into DIR
// --only       comma-separated: workload, start, live, certs, hashing, audit, secrets (default: all)
// --node PATH  also run the gatehouse host processes (workload, both floors, plugin start with the TypeScript
//              plugin and `node -e 0`) under this Node.js binary, in the same rounds; its figures are
//              extra rows marked with its version (never required: without it nothing changes)
//
// Prints a table on stdout, progress on stderr, and writes every figure, the raw samples, the machine
// and the versions to the results file. Ratios are gatehouse / counterpart, within this one run.
import { execFileSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bundlePlugin } from '../src/bundle/bundle.js';
import type { SealedPlugin } from '../src/verify/seal.js';
import { auditBench } from './audit.js';
import { cleanEnv, runJson } from './child.js';
import { figures as toFigures, type AltNodeRaw, type Figure, type RawResults } from './figures.js';
import { hashing } from './hashing.js';
import type { LaunchFloorResult } from './launch-floor.js';
import type { LiveResult, WorkloadResult } from './host-workloads.js';
import type { InterleavedLaunchResult } from './interleaved-launch.js';
import type { InterleavedUnaryResult } from './interleaved-unary.js';
import { machine, versions } from './machine.js';
import { sealBundle } from './sealed-bundle.js';
import { markdownTable, textTable } from './table.js';

const here = (relative: string): string => fileURLToPath(new URL(relative, import.meta.url));
// Compiled to dist/bench/: the repository is two levels up, the Go fixtures beside it in dist/.
const repoRoot = here('../../');
const goBinDir = here('../interop-go/bin/');
const hostRunner = here('./gatehouse-host.js');
const tsPlugin = here('../examples/kv/plugin.js');
// The form docs/plugins.md recommends: precompiled codecs, bundled.
const tsPrecompiledPlugin = here('../examples/kv-precompiled/plugin.js');
// The least a Node.js plugin serving over AutoMTLS does before its line, no gRPC: the floor under the above.
const http2ServerFloor = here('./http2-server-floor.js');
const secretsBench = here('./secrets-server.js');

const SCENARIOS = ['workload', 'start', 'live', 'certs', 'hashing', 'audit', 'secrets'] as const;
type Scenario = (typeof SCENARIOS)[number];

interface Settings {
  /** Workload rounds, gatehouse and go-plugin host alternating; launches and seconds are per round. */
  rounds: number;
  launches: number;
  seconds: number;
  bigSeconds: number;
  warmupSeconds: number;
  livePlugins: number;
  certs: number;
  starts: number;
  largeBytes: number;
  smallFiles: number;
  smallBytes: number;
  hashRepeats: number;
  opensslSeconds: number;
  auditBurst: number;
  auditDurable: number;
  auditCheckpoints: number;
}

const FULL: Settings = {
  rounds: 5,
  launches: 15,
  seconds: 1.5,
  bigSeconds: 1,
  // Steady state: a Node.js host needs one to two seconds after a launch to optimise its call path
  // (docs/benchmarks.md); the warm-up's own rate is reported beside each unary figure.
  warmupSeconds: 2,
  livePlugins: 20,
  certs: 50,
  starts: 20,
  largeBytes: 256 << 20,
  smallFiles: 1000,
  smallBytes: 32 << 10,
  hashRepeats: 5,
  opensslSeconds: 3,
  auditBurst: 20_000,
  auditDurable: 300,
  auditCheckpoints: 500,
};

const QUICK: Settings = {
  rounds: 1,
  launches: 3,
  seconds: 0.3,
  bigSeconds: 0.3,
  warmupSeconds: 0.1,
  livePlugins: 2,
  certs: 5,
  starts: 3,
  largeBytes: 8 << 20,
  smallFiles: 40,
  smallBytes: 32 << 10,
  hashRepeats: 1,
  opensslSeconds: 1,
  auditBurst: 1000,
  auditDurable: 20,
  auditCheckpoints: 20,
};

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

interface Go {
  kvplugin: string;
  kvbench: string;
  securehash: string;
}

function findGo(): Go | undefined {
  const go = {
    kvplugin: path.join(goBinDir, 'kvplugin'),
    kvbench: path.join(goBinDir, 'kvbench'),
    securehash: path.join(goBinDir, 'securehash'),
  };
  return Object.values(go).every(executable) ? go : undefined;
}

const progress = (text: string): void => void process.stderr.write(`bench: ${text}\n`);

function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      profile: { type: 'string' },
      only: { type: 'string' },
      markdown: { type: 'boolean', default: false },
      from: { type: 'string' },
      node: { type: 'string' },
    },
  });
  if (values.from !== undefined) {
    const saved = JSON.parse(readFileSync(values.from, 'utf8')) as { figures: Figure[] };
    process.stdout.write((values.markdown ? markdownTable(saved.figures) : textTable(saved.figures)) + '\n');
    return Promise.resolve();
  }
  const only = new Set((values.only ?? SCENARIOS.join(',')).split(',').map((s) => s.trim()));
  for (const name of only) {
    if (!SCENARIOS.includes(name as Scenario)) throw new Error(`--only: unknown scenario ${name}; known: ${SCENARIOS.join(', ')}`);
  }
  if (values.node !== undefined && !(path.isAbsolute(values.node) && executable(values.node))) {
    throw new Error(`--node: ${values.node} is not an absolute path to an executable`);
  }
  return run({
    altNode: values.node,
    quick: values.quick,
    out: path.resolve(values.out ?? path.join(repoRoot, 'bench', 'results', 'latest.json')),
    profileDir: values.profile === undefined ? undefined : path.resolve(values.profile),
    only: only as Set<Scenario>,
    markdown: values.markdown,
  });
}

interface RunOptions {
  /** A second Node.js binary for the gatehouse host processes (--node), or undefined. */
  altNode: string | undefined;
  quick: boolean;
  out: string;
  profileDir: string | undefined;
  only: Set<Scenario>;
  markdown: boolean;
}

async function run(options: RunOptions): Promise<void> {
  const started = performance.now();
  // Two cores leave no room for anything else: a busy machine shows here, not just in odd figures.
  const loadAtStart = loadavg();
  const settings = options.quick ? QUICK : FULL;
  const go = findGo();
  if (go === undefined) {
    progress('Go fixtures not built (node dist/test/interop/build-go.js): go-plugin figures are left out');
  }
  // Every gatehouse process (host runner, TypeScript plugin) can be profiled, each into its own file.
  const nodeFlags = (name: string): string[] =>
    options.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', path.join(options.profileDir, name)];
  const tsPluginCommand = (profileName: string, node = process.execPath): string[] => [node, ...nodeFlags(profileName), tsPlugin];
  const gatehouseOn = <T>(node: string, profileName: string, args: string[]): Promise<T> =>
    runJson<T>(node, ['--expose-gc', ...nodeFlags(profileName), hostRunner, ...args]);
  const gatehouse = <T>(profileName: string, args: string[]): Promise<T> => gatehouseOn(process.execPath, profileName, args);
  // The second binary's rows sit next to the default's; its results have the same shape.
  const alt: AltNodeRaw | null =
    options.altNode === undefined
      ? null
      : {
          path: options.altNode,
          version: execFileSync(options.altNode, ['--version'], { encoding: 'utf8', env: cleanEnv() }).trim(),
          workload: { gatehouseHost: {}, floor: {}, launchFloor: {} },
          start: { ts: [], tsBundled: [], tsSealed: [], http2ServerFloor: [], nodeFloor: [] },
        };

  const raw: RawResults = {
    workload: { gatehouseHost: {}, goPluginHost: {}, floor: {}, launchFloor: {} },
    live: { gatehouseHost: null, goPluginHost: null },
    certs: { gatehouse: { coldMs: Number.NaN, ms: [] }, goPlugin: null },
    start: { ts: [], tsBundled: [], tsBundledProtoLoader: [], tsSealed: [], http2ServerFloor: [], go: null, nodeFloor: [] },
    startPageFaults: {},
    hashing: null,
    audit: null,
    altNode: alt,
  };

  if (options.only.has('workload')) {
    const workloadArgs = [
      ['launches', settings.launches],
      ['seconds', settings.seconds],
      ['big-seconds', settings.bigSeconds],
      ['warmup-seconds', settings.warmupSeconds],
    ] as const;
    const nodeArgs = workloadArgs.flatMap(([name, value]) => [`--${name}`, String(value)]);
    const goArgs = workloadArgs.flatMap(([name, value]) => [`-${name}`, String(value)]);
    // The floor launches nothing to time: it is there for the calls.
    const floorArgs = workloadArgs.filter(([name]) => name !== 'launches').flatMap(([name, value]) => [`--${name}`, String(value)]);
    const plugins: Array<['go' | 'ts', string[], string[]]> = [];
    if (go !== undefined) plugins.push(['go', [go.kvplugin], [go.kvplugin]]);
    plugins.push(['ts', tsPluginCommand('gatehouse-host-plugin'), tsPluginCommand('go-plugin-host-plugin')]);
    for (let round = 1; round <= settings.rounds; round++) {
      for (const [kind, ourCommand, theirCommand] of plugins) {
        const name = kind === 'go' ? 'Go plugin' : 'gatehouse plugin';
        progress(`workload round ${round}/${settings.rounds}: gatehouse host -> ${name}`);
        const ours = await gatehouse<WorkloadResult>(`gatehouse-host-${kind}`, ['workload', ...nodeArgs, '--', ...ourCommand]);
        (raw.workload.gatehouseHost[kind] ??= []).push(ours);
        progress(`workload round ${round}/${settings.rounds}: launch floor -> ${name}`);
        const launchFloor = await gatehouse<LaunchFloorResult>(`launch-floor-${kind}`, ['launch-floor', '--launches', String(settings.launches), '--', ...ourCommand]);
        ((raw.workload.launchFloor ??= {})[kind] ??= []).push(launchFloor);
        progress(`workload round ${round}/${settings.rounds}: node:http2 floor -> ${name}`);
        const floor = await gatehouse<WorkloadResult>(`floor-host-${kind}`, ['http2-floor', ...floorArgs, '--', ...ourCommand]);
        (raw.workload.floor[kind] ??= []).push(floor);
        progress(`workload round ${round}/${settings.rounds}: gatehouse host and node:http2 floor in alternating slices -> ${name}`);
        ((raw.workload.interleaved ??= {})[kind] ??= []).push(await gatehouse<InterleavedUnaryResult[]>(`interleaved-${kind}`, ['unary-interleaved', ...floorArgs, '--', ...ourCommand]));
        progress(`workload round ${round}/${settings.rounds}: gatehouse launch and launch floor in turn -> ${name}`);
        ((raw.workload.launchInterleaved ??= {})[kind] ??= []).push(
          await gatehouse<InterleavedLaunchResult>(`launch-interleaved-${kind}`, ['launch-interleaved', '--launches', String(settings.launches), '--', ...ourCommand]),
        );
        if (alt !== null) {
          // The same gatehouse-side runs under the second binary, in the same round; the plugin is unchanged.
          progress(`workload round ${round}/${settings.rounds}: gatehouse host, launch floor, node:http2 floor, interleaved under Node ${alt.version} -> ${name}`);
          const on = <T>(profile: string, args: string[]) => gatehouseOn<T>(alt.path, `alt-${profile}-${kind}`, [...args, '--', ...ourCommand]);
          (alt.workload.gatehouseHost[kind] ??= []).push(await on<WorkloadResult>('gatehouse-host', ['workload', ...nodeArgs]));
          ((alt.workload.launchFloor ??= {})[kind] ??= []).push(await on<LaunchFloorResult>('launch-floor', ['launch-floor', '--launches', String(settings.launches)]));
          (alt.workload.floor[kind] ??= []).push(await on<WorkloadResult>('floor-host', ['http2-floor', ...floorArgs]));
          ((alt.workload.interleaved ??= {})[kind] ??= []).push(await on<InterleavedUnaryResult[]>('interleaved', ['unary-interleaved', ...floorArgs]));
          ((alt.workload.launchInterleaved ??= {})[kind] ??= []).push(await on<InterleavedLaunchResult>('launch-interleaved', ['launch-interleaved', '--launches', String(settings.launches)]));
        }
        if (go !== undefined) {
          progress(`workload round ${round}/${settings.rounds}: go-plugin host -> ${name}`);
          const theirs = await runJson<WorkloadResult>(go.kvbench, ['workload', ...goArgs, '--', ...theirCommand]);
          (raw.workload.goPluginHost[kind] ??= []).push(theirs);
        }
      }
    }
  }

  if (options.only.has('start')) {
    progress('plugin start: spawn to handshake line');
    // Next to the original, so that the .proto it reads relative to import.meta.url is found as in place.
    const protoLoaderBundle = path.join(path.dirname(tsPlugin), 'plugin.bundle.mjs');
    // Alone in an empty directory: the recommended bundle needs no node_modules and no data file.
    const bundleDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-bench-bundle-'));
    const precompiledBundle = path.join(bundleDir, 'plugin.mjs');
    const serverFloorBundle = path.join(bundleDir, 'http2-server.mjs');
    let sealed: SealedPlugin | undefined;
    try {
      await bundlePlugin({ entry: tsPlugin, out: protoLoaderBundle });
      await bundlePlugin({ entry: tsPrecompiledPlugin, out: precompiledBundle });
      await bundlePlugin({ entry: http2ServerFloor, out: serverFloorBundle });
      // The same bundle sealed as a package: what the containment hook adds to a verified launch's start.
      sealed = await sealBundle(precompiledBundle);
      // What each helper is given after its mode: `floor --n N`, or `start --n N -- COMMAND...`.
      const kinds: Array<{ kind: keyof RawResults['start']; profile: string; mode: 'start' | 'floor'; command: string[] }> = [
        { kind: 'nodeFloor', profile: 'floor', mode: 'floor', command: [] },
        { kind: 'ts', profile: 'start', mode: 'start', command: tsPluginCommand('start-plugin') },
        { kind: 'tsBundled', profile: 'start-bundled', mode: 'start', command: [process.execPath, ...nodeFlags('start-bundled-plugin'), precompiledBundle] },
        { kind: 'http2ServerFloor', profile: 'start-server-floor', mode: 'start', command: [process.execPath, ...nodeFlags('start-server-floor-plugin'), serverFloorBundle] },
        {
          kind: 'tsBundledProtoLoader',
          profile: 'start-bundled-proto-loader',
          mode: 'start',
          command: [process.execPath, ...nodeFlags('start-bundled-proto-loader-plugin'), protoLoaderBundle],
        },
        { kind: 'tsSealed', profile: 'start-sealed', mode: 'start', command: [process.execPath, ...nodeFlags('start-sealed-plugin'), ...sealed.args] },
      ];
      if (go !== undefined) kinds.push({ kind: 'go', profile: 'start-go', mode: 'start', command: [go.kvplugin] });
      // In rounds, every kind once per round: a busy moment on the machine falls on all of them alike.
      const rounds = Math.max(1, Math.round(settings.starts / 5));
      const perRound = String(Math.ceil(settings.starts / rounds));
      for (let round = 0; round < rounds; round++) {
        for (const { kind, profile, mode, command } of kinds) {
          const args = [mode, '--n', perRound, ...(command.length > 0 ? ['--', ...command] : [])];
          const result = await gatehouse<{ ms: number[]; pageFaults?: number[] }>(profile, args);
          (raw.start[kind] ??= []).push(...result.ms);
          if (result.pageFaults !== undefined) ((raw.startPageFaults ??= {})[kind] ??= []).push(...result.pageFaults);
        }
      }
      if (alt !== null) {
        progress(`plugin start under Node ${alt.version}`);
        const n = String(settings.starts);
        const starts = async (profile: string, command: string[]) => (await gatehouseOn<{ ms: number[] }>(alt.path, `alt-${profile}`, ['start', '--n', n, '--', ...command])).ms;
        alt.start.ts = await starts('start', tsPluginCommand('alt-start-plugin', alt.path));
        alt.start.tsBundled = await starts('start-bundled', [alt.path, ...nodeFlags('alt-start-bundled-plugin'), precompiledBundle]);
        alt.start.http2ServerFloor = await starts('start-server-floor', [alt.path, ...nodeFlags('alt-start-server-floor-plugin'), serverFloorBundle]);
        alt.start.tsSealed = await starts('start-sealed', [alt.path, ...nodeFlags('alt-start-sealed-plugin'), ...sealed.args]);
        // The host's own binary is the one `node -e 0` runs with.
        alt.start.nodeFloor = (await gatehouseOn<{ ms: number[] }>(alt.path, 'alt-floor', ['floor', '--n', n])).ms;
      }
    } finally {
      await sealed?.dispose();
      rmSync(protoLoaderBundle, { force: true });
      rmSync(bundleDir, { recursive: true, force: true });
    }
  }

  if (options.only.has('live') && go !== undefined) {
    progress(`host cost: ${settings.livePlugins} live Go plugins per host`);
    const n = String(settings.livePlugins);
    raw.live.gatehouseHost = await gatehouse<LiveResult>('live', ['live', '--n', n, '--', go.kvplugin]);
    raw.live.goPluginHost = await runJson<LiveResult>(go.kvbench, ['live', '-n', n, '--', go.kvplugin]);
  }

  if (options.only.has('certs')) {
    progress('certificate generation');
    raw.certs.gatehouse = await gatehouse('certs', ['certs', '--n', String(settings.certs)]);
    if (go !== undefined) raw.certs.goPlugin = await runJson(go.kvbench, ['certs', '-n', String(settings.certs)]);
  }

  if (options.only.has('hashing')) {
    progress('verification hashing (and openssl speed)');
    raw.hashing = await hashing({
      largeBytes: settings.largeBytes,
      smallFiles: settings.smallFiles,
      smallBytes: settings.smallBytes,
      repeats: settings.hashRepeats,
      opensslSeconds: settings.opensslSeconds,
      securehash: go?.securehash,
    });
  }

  if (options.only.has('audit')) {
    progress('audit log: cost per record, per checkpoint, verification');
    raw.audit = await auditBench({ burstRecords: settings.auditBurst, durableRecords: settings.auditDurable, checkpoints: settings.auditCheckpoints });
  }

  // The secrets server (issue 13): its own helper and its own lines below the table.
  let secretsServer: { kvReadsPerSecondThroughServer: number; kvReadsPerSecondInProcess: number; isolationRatio: number; mountToFirstResponseMs: { median: number } } | null = null;
  if (options.only.has('secrets')) {
    progress('secrets server: kv reads/s through the server and in-process, mount to first response');
    secretsServer = await runJson(process.execPath, [secretsBench, '--seconds', String(Math.max(1, settings.seconds)), '--mounts', options.quick ? '2' : '5']);
  }

  const figures = toFigures(raw).filter((figure) => options.only.has(figure.scenario === 'launch' || figure.scenario === 'unary' || figure.scenario === 'big' ? 'workload' : figure.scenario));
  const versionInfo = await versions(go === undefined ? undefined : goBinDir);
  const results = {
    schema: 1,
    mode: options.quick ? 'quick' : 'full',
    date: new Date().toISOString(),
    durationSeconds: (performance.now() - started) / 1000,
    machine: machine(),
    loadAverage: { start: loadAtStart, end: loadavg() },
    versions: versionInfo,
    available: { go: go !== undefined, openssl: versionInfo.openssl !== null },
    hashImplementation: raw.hashing?.implementation ?? null,
    altNode: alt === null ? null : { path: alt.path, version: alt.version },
    settings,
    figures,
    secretsServer,
    raw,
  };
  mkdirSync(path.dirname(options.out), { recursive: true });
  writeFileSync(options.out, JSON.stringify(results, null, 2) + '\n');

  const m = results.machine;
  process.stdout.write(
    `gatehouse bench (${results.mode}), ${results.date}\n` +
      `${m.cpu}, ${m.cores} cores, ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB` +
      (m.pageFaultMicros === null ? '' : `, ${m.pageFaultMicros.toFixed(2)} µs per first touch of a page`) +
      `; Node ${versionInfo.node}, ` +
      `grpc-js ${versionInfo.grpcJs}, ${versionInfo.go ?? 'no Go'}, go-plugin ${versionInfo.goPlugin ?? '—'}` +
      (alt === null ? '' : `; rows marked [Node ${alt.version}]: gatehouse side under ${alt.path}`) +
      '\n\n' +
      (options.markdown ? markdownTable(figures) : textTable(figures)) +
      (secretsServer
        ? `\n\nsecrets server, kv reads/s at concurrency 16: ${secretsServer.kvReadsPerSecondThroughServer} through the server, ` +
          `${secretsServer.kvReadsPerSecondInProcess} in-process (x${secretsServer.isolationRatio}); ` +
          `mount to first response ${secretsServer.mountToFirstResponseMs.median} ms (median)`
        : '') +
      `\n\nresults: ${options.out} (${results.durationSeconds.toFixed(0)} s)\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});

// Regenerates examples/generated/ from the examples' .proto files with the three generators the typed
// client supports. The output is committed, so `npm test` needs no protoc; a test checks it is current.
//   node dist/examples/generate.js [OUT_DIR]   (default: examples/generated)
import { execFile } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../', import.meta.url));
const bin = (name: string): string => join(repo, 'node_modules', '.bin', name);
export const PROTOC = '/usr/bin/protoc';
const PROTOS = [
  { dir: join(repo, 'examples', 'kv'), file: 'kv.proto' },
  { dir: join(repo, 'examples', 'typed'), file: 'notes.proto' },
];

export async function generate(outDir: string): Promise<void> {
  await rm(outDir, { recursive: true, force: true });
  for (const sub of ['ts-proto', 'proto-loader', 'protobuf-es']) await mkdir(join(outDir, sub), { recursive: true });
  // No shell, absolute paths, and only PATH in the environment (protoc runs the plugins by path).
  const env = { PATH: '/usr/bin:/bin' };
  for (const { dir, file } of PROTOS) {
    await run(PROTOC, [
      `--plugin=protoc-gen-ts_proto=${bin('protoc-gen-ts_proto')}`,
      `--ts_proto_out=${join(outDir, 'ts-proto')}`,
      '--ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,importSuffix=.js',
      `--plugin=protoc-gen-es=${bin('protoc-gen-es')}`,
      `--es_out=${join(outDir, 'protobuf-es')}`,
      '--es_opt=target=ts,import_extension=js',
      `-I${dir}`,
      join(dir, file),
    ], { env });
    await run(process.execPath, [
      join(repo, 'node_modules', '@grpc', 'proto-loader', 'build', 'bin', 'proto-loader-gen-types.js'),
      '--grpcLib=@grpc/grpc-js',
      `--outDir=${join(outDir, 'proto-loader')}`,
      '--keepCase',
      '--longs=String',
      '--defaults',
      '--oneofs',
      '--importFileExtension=.js',
      // Relative to the repository: the generator writes this path into every file it makes, and an
      // absolute one would differ in every checkout (and make the committed code look stale).
      relative(repo, join(dir, file)),
    ], { env, cwd: repo });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await generate(process.argv[2] ?? join(repo, 'examples', 'generated'));
}

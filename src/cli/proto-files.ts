/**
 * Reading the .proto files of `gatehouse call --proto`: each file, the named ones and every file they
 * import, is read by us (a regular file, no final symbolic link followed, bounded) and only its text
 * goes to protobufjs, which would otherwise read any path an import names, whole and blocking.
 */
import { lstat } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import protobuf from 'protobufjs';
import type { Root } from 'protobufjs';
import { readLimited } from '../discover/untrusted-file.js';
import { GatehouseError, isGatehouseError, type GatehouseErrorCode } from '../errors.js';

/** Far above any real .proto (descriptor.proto is 50 KiB), far below what could strain memory. */
export const MAX_PROTO_FILE_BYTES = 1 << 20;
/** As many files as a plugin's reflection may send (P3). */
export const MAX_PROTO_FILES = 1024;
/** All of them together: 1,024 files of 1 MiB each would still be a gigabyte. */
export const MAX_PROTO_TOTAL_BYTES = 16 << 20;

const WELL_KNOWN_PREFIX = 'google/protobuf/';

/** One file to read: where it is, and how a failure names it. */
interface ProtoFile {
  path: string;
  /** The file that imports it, or undefined for a --proto. */
  importer: string | undefined;
  /** A weak import that is missing is skipped, as protoc and protobufjs do. */
  weak: boolean;
}

/**
 * Loads the .proto `files` and what they import into one root. Imports are looked up in the
 * `importPaths` directories first, then next to the importing file, as @grpc/proto-loader does; Google's
 * well-known types (google/protobuf/any.proto...) come from protobufjs's bundled copies, never from
 * disk, as its loadSync has them. Read failures keep their codes (FILE_NOT_FOUND, FILE_NOT_REGULAR,
 * PROTO_TOO_LARGE); a file that does not parse or resolve is a usage error.
 */
export async function loadProtos(files: readonly string[], importPaths: readonly string[]): Promise<Root> {
  const directories = importPaths.map((directory) => resolve(directory));
  const root = new protobuf.Root();
  // Every path is made absolute so that one file never loads twice.
  const loaded = new Set<string>();
  let totalBytes = 0;
  const load = async (file: ProtoFile): Promise<void> => {
    const bundled = bundledName(file.path);
    const key = bundled ?? file.path;
    if (loaded.has(key)) return;
    loaded.add(key);
    if (bundled !== undefined) {
      // As loadSync adds a bundled definition: its options, then its types.
      const json = protobuf.common.get(bundled);
      if (json?.options !== undefined) root.setOptions(json.options);
      root.addJSON(json?.nested ?? {});
      return;
    }
    // An import graph without end (or an import of every file on the disk) stops here.
    if (loaded.size > MAX_PROTO_FILES) throw refusal('PROTO_TOO_LARGE', file, `more than ${MAX_PROTO_FILES} .proto files; --proto and its imports may load at most that many`);
    const bytes = await readProto(file);
    if (bytes === undefined) return;
    totalBytes += bytes.length;
    if (totalBytes > MAX_PROTO_TOTAL_BYTES) throw refusal('PROTO_TOO_LARGE', file, `the .proto files read so far come to more than ${MAX_PROTO_TOTAL_BYTES} bytes`);
    const text = bytes.toString('utf8');
    let parsed: protobuf.IParserResult;
    try {
      // keepCase: field names stay as written in the .proto; JSON names are derived from them as protoc does.
      parsed = protobuf.parse(text, root, { keepCase: true });
    } catch (error) {
      const message = (error as Error).message;
      // An imported file is not necessarily a .proto the user chose to show: its text (a token, a whole secret) is not quoted.
      const line = /\(line \d+\)/.exec(message)?.[0];
      const problem = file.importer === undefined ? message : `does not parse as a .proto file${line === undefined ? '' : ` ${line}`}`;
      throw new GatehouseError('USAGE', `proto: ${named(file)}: ${problem}`, { cause: error });
    }
    // In the order loadSync follows them: each import, with its own imports, before the next.
    for (const target of parsed.imports ?? []) await load({ path: await resolveImport(file.path, target, directories), importer: file.path, weak: false });
    for (const target of parsed.weakImports ?? []) await load({ path: await resolveImport(file.path, target, directories), importer: file.path, weak: true });
  };
  for (const file of files) await load({ path: resolve(file), importer: undefined, weak: false });
  try {
    root.resolveAll();
  } catch (error) {
    throw new GatehouseError('USAGE', `proto: ${(error as Error).message}`, { cause: error });
  }
  return root;
}

/** protobufjs's name for a well-known type it bundles, found anywhere in `path` as its loader finds it. */
function bundledName(path: string): string | undefined {
  const at = path.lastIndexOf(WELL_KNOWN_PREFIX);
  const name = at === -1 ? undefined : path.slice(at);
  return name !== undefined && protobuf.common.get(name) !== null ? name : undefined;
}

/** The bytes of `file`; undefined for a weak import that is not there. */
async function readProto(file: ProtoFile): Promise<Buffer | undefined> {
  try {
    return await readLimited(file.path, MAX_PROTO_FILE_BYTES, 'PROTO_TOO_LARGE');
  } catch (error) {
    if (!isGatehouseError(error)) throw error;
    if (file.weak && error.code === 'FILE_NOT_FOUND') return undefined;
    throw refusal(error.code, file, error.message.replace(`${file.path}: `, ''), error);
  }
}

const HINTS: Partial<Record<GatehouseErrorCode, string>> = {
  FILE_NOT_FOUND: 'check the path, and --import-path for an import',
  FILE_NOT_REGULAR: 'a .proto must be a regular file, not a FIFO, a device or a symbolic link (give the path it points to: readlink -f)',
  PROTO_TOO_LARGE: 'check that it is the .proto file you meant',
};

/** The file, and who imported it. */
function named(file: ProtoFile): string {
  return file.importer === undefined ? file.path : `${file.path} (imported by ${file.importer})`;
}

/** A failure naming the file, who imported it, and what to do. */
function refusal(code: GatehouseErrorCode, file: ProtoFile, problem: string, cause?: unknown): GatehouseError {
  const hint = HINTS[code];
  return new GatehouseError(code, `${named(file)}: ${problem}${hint === undefined ? '' : `; ${hint}`}`, cause === undefined ? undefined : { cause });
}

/**
 * Where `target`, imported by `importer`, is: in the first import directory that has an entry of that
 * name, else beside the importer. Any entry counts, not only a regular file: what is there is then read
 * or refused, never passed over for a file further down the list.
 */
async function resolveImport(importer: string, target: string, directories: readonly string[]): Promise<string> {
  // Bundled well-known types are taken by name, before any directory is looked in, as loadSync does.
  if (bundledName(target) !== undefined) return target;
  // As protoc requires of an import: a vendored .proto naming "/proc/self/environ" or "../../.kube/token" read a
  // file the user never chose, and its first token (a whole secret) came back in the parse error.
  if (isAbsolute(target) || target.includes('\\') || target.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new GatehouseError(
      'USAGE',
      `proto: ${importer} imports ${JSON.stringify(target.slice(0, 200))}: an import is a relative path without "." or ".." (as protoc requires); put the file it means under an --import-path directory`,
    );
  }
  for (const directory of directories) {
    const candidate = join(directory, target);
    if (await lstat(candidate).then(() => true, () => false)) return candidate;
  }
  return resolve(dirname(importer), target);
}

import { discoverNamed } from '../discover/discover.js';
import { GatehouseError } from '../errors.js';
import { checkManifest, MANIFEST_SCHEMA, MAX_MANIFEST_BYTES, relativePath, type Manifest } from './manifest.js';
import { checkedPlugins } from './manifest-create.js';

/** One line of a coreutils SHA256SUMS file. */
export interface Sha256SumsEntry {
  /** Relative, normalised as a manifest path; a leading `./` is dropped. */
  path: string;
  /** 64 lower-case hex digits. */
  sha256: string;
}

export interface Sha256SumsOptions {
  /** Where the listed files are; each is hashed and must match its line. */
  dir: string;
  version: number;
  expires: Date;
  concurrency?: number;
}

// `sha256sum` writes "<hash>  <name>" (text mode) or "<hash> *<name>" (binary mode); both mean the same on POSIX.
const LINE = /^([0-9a-fA-F]{64}) [ *](.+)$/;

/**
 * Parses the output of `sha256sum` (at most 1 MiB). Lines in the BSD tag format, escaped names (a leading
 * backslash) and names a manifest could not hold are refused with the line number.
 */
export function parseSha256Sums(text: string): Sha256SumsEntry[] {
  if (Buffer.byteLength(text, 'utf8') > MAX_MANIFEST_BYTES) throw new GatehouseError('MANIFEST_TOO_LARGE', `SHA256SUMS: more than ${MAX_MANIFEST_BYTES} bytes`);
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const seen = new Set<string>();
  return lines.map((raw, i) => {
    const where = `SHA256SUMS line ${i + 1}`;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.startsWith('\\')) throw new GatehouseError('MANIFEST_INVALID', `${where}: escaped file names are not supported`);
    const match = LINE.exec(line);
    if (!match) throw new GatehouseError('MANIFEST_INVALID', `${where}: expected "<64 hex digits>  <file name>"`);
    const [, hash = '', name = ''] = match;
    const path = relativePath(name.replace(/^(?:\.\/)+/, ''), where);
    // The same name twice, perhaps with two digests, leaves no single answer for what the file should be.
    if (seen.has(path)) throw new GatehouseError('MANIFEST_INVALID', `${where}: ${JSON.stringify(path)} is listed twice`);
    seen.add(path);
    return { path, sha256: hash.toLowerCase() };
  });
}

/**
 * A manifest from a SHA256SUMS file and the directory holding the files it lists: each file must pass the
 * file-safety checks `createManifest` applies to the files its patterns match (the first failure is
 * thrown), is hashed, must match its line (DIGEST_MISMATCH otherwise), and gives its size. Each plugin is
 * named by its path.
 */
export async function manifestFromSha256Sums(text: string, options: Sha256SumsOptions): Promise<Manifest> {
  const entries = parseSha256Sums(text);
  if (entries.length === 0) throw new GatehouseError('MANIFEST_INVALID', 'SHA256SUMS: lists no files');
  // A line names any path below the directory: through a link out of it, or to a file someone else can rewrite.
  const plugins = await checkedPlugins(await discoverNamed(options.dir, entries.map((entry) => entry.path)), options.concurrency);
  for (const [i, plugin] of plugins.entries()) {
    const expected = entries[i]?.sha256;
    // A release whose files no longer match its own SHA256SUMS must not be vouched for by a new signature.
    if (plugin.sha256 !== expected) {
      throw new GatehouseError('DIGEST_MISMATCH', `${plugin.path}: SHA-256 is ${plugin.sha256}, SHA256SUMS says ${expected}`);
    }
  }
  return checkManifest({ schema: MANIFEST_SCHEMA, version: options.version, expires: options.expires.toISOString(), plugins });
}

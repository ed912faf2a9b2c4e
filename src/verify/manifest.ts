import { GatehouseError } from '../errors.js';
import { hasLoneSurrogate, parseStrictJson } from './strict-json.js';
import { checkPackageFields, checkPluginVersion } from './package-fields.js';

/** The `schema` every version-1 manifest carries; a different value is a different format and is refused. */
export const MANIFEST_SCHEMA = 'gatehouse.manifest/v1';
export const MAX_MANIFEST_BYTES = 1024 * 1024;

/** A file, by its path and the digest and size of its bytes. */
export interface ManifestFile {
  /** Relative to the plugin directory, `/`-separated, normalised: no `.`, `..` or empty segments. */
  path: string;
  /** SHA-256, 64 lower-case hex digits. */
  sha256: string;
  /** Bytes. */
  size: number;
}

/** The program that runs a plugin's script. Pinned when it has a digest; otherwise trusted as part of the system. */
export interface ManifestInterpreter {
  /** Absolute (a system interpreter such as /usr/bin/node), or relative to the plugin directory (then pinned). */
  path: string;
  sha256?: string;
  size?: number;
}

/** One plugin: the file that is executed (or, with an interpreter, the script it is given) and how to start it. */
export interface ManifestPlugin extends ManifestFile {
  /** What hosts and the CLI call the plugin; unique in the manifest. */
  name: string;
  args?: string[];
  protocolVersions?: number[];
  interpreter?: ManifestInterpreter;
  /** Every other file the plugin runs or loads (modules of a script), sealed next to it. */
  files?: ManifestFile[];
  /** A semantic version (npm's semver, canonical form); entries sharing a name must each carry a distinct one. */
  version?: string;
  /**
   * The directory (relative, `/`-separated) of a plugin package: `path` and every file are inside it, and
   * every file in it is listed. Run under Node with module resolution confined to the sealed copy.
   */
  package?: string;
}

export interface Manifest {
  schema: typeof MANIFEST_SCHEMA;
  /** Only ever goes up: a host that remembers the highest version it accepted refuses any lower one. */
  version: number;
  /** ISO 8601 in UTC (`Z`); the manifest is refused from this instant on. */
  expires: string;
  plugins: ManifestPlugin[];
}

const LIMITS = { plugins: 4096, files: 4096, args: 256, argChars: 4096, protocolVersions: 16, pathBytes: 1024 };
const NAME = /^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$/;
const SHA256 = /^[0-9a-f]{64}$/;
const EXPIRES = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{3})?Z$/;
/**
 * Controls (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width spaces and joiners,
 * U+FEFF), line and paragraph separators, unpaired surrogates, and the backslash.
 */
const UNSAFE_PATH_CHARACTER = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}\\]/u;

/**
 * Parses a manifest strictly: at most 1 MiB of UTF-8 JSON, no duplicate keys, no unknown fields, and every
 * field checked. Each failure is MANIFEST_INVALID (MANIFEST_TOO_LARGE for size) naming the field.
 */
export function parseManifest(input: string | Uint8Array): Manifest {
  const bytes = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  // Checked before parsing, so an outside file cannot make us parse or hold more than this.
  if (bytes > MAX_MANIFEST_BYTES) throw new GatehouseError('MANIFEST_TOO_LARGE', `manifest: ${bytes} bytes, more than ${MAX_MANIFEST_BYTES}`);
  // Integer tokens only: every number in a manifest is an integer, and `1.0` or `1e0` would be a second spelling.
  return checkManifest(parseStrictJson(typeof input === 'string' ? input : utf8(input), 'MANIFEST_INVALID', 'manifest', { integersOnly: true }));
}

/** The canonical text of a manifest: checked as strictly as parsing checks it, two-space JSON, final newline. */
export function formatManifest(manifest: Manifest): string {
  return `${JSON.stringify(checkManifest(manifest), null, 2)}\n`;
}

/** Checks any value against the manifest format and returns a copy with only its fields, in canonical order. */
export function checkManifest(value: unknown): Manifest {
  const root = fields(value, 'manifest', ['schema', 'version', 'expires', 'plugins'], []);
  if (root.schema !== MANIFEST_SCHEMA) throw invalid('schema', `must be ${JSON.stringify(MANIFEST_SCHEMA)}`);
  const plugins = list(root.plugins, 'plugins', LIMITS.plugins).map((plugin, i) => checkPlugin(plugin, `plugins[${i}]`));
  const names = new Map<string, number>();
  plugins.forEach((plugin, i) => {
    const key = plugin.version === undefined ? plugin.name : `${plugin.name}@${plugin.version}`;
    const first = names.get(key);
    const unversioned = plugins.findIndex((other, j) => j < i && other.name === plugin.name && (other.version === undefined) !== (plugin.version === undefined));
    // Two entries under one name would let the CLI or a host pick either set of bytes; versions tell them apart.
    if (first !== undefined) throw invalid(`plugins[${i}].name`, `${JSON.stringify(key)} is already the name of plugins[${first}]`);
    if (unversioned !== -1) throw invalid(`plugins[${i}].version`, `entries named ${JSON.stringify(plugin.name)} must all carry a distinct version (plugins[${unversioned}] differs)`);
    names.set(key, i);
  });
  return { schema: MANIFEST_SCHEMA, version: positiveInteger(root.version, 'version'), expires: expires(root.expires), plugins };
}

/**
 * Checks a relative path: `/`-separated, normalised, no `..` (which would leave the plugin directory), not
 * absolute, no control, invisible or bidi characters, unpaired surrogates or backslashes, at most 1024
 * bytes. Returns it unchanged.
 */
export function relativePath(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') throw invalid(where, 'must be a non-empty string');
  if (value.startsWith('/')) throw invalid(where, `must be relative to the plugin directory, not absolute: ${JSON.stringify(value)}`);
  return pathSegments(value, where);
}

function checkPlugin(value: unknown, where: string): ManifestPlugin {
  const plugin = fields(value, where, ['name', 'path', 'sha256', 'size'], ['args', 'protocolVersions', 'interpreter', 'files', 'version', 'package']);
  if (typeof plugin.name !== 'string' || !NAME.test(plugin.name)) {
    throw invalid(`${where}.name`, 'must be 1 to 128 printable ASCII characters, not starting or ending with a space');
  }
  const checked: ManifestPlugin = { name: plugin.name, ...checkFile(plugin, where) };
  if (plugin.args !== undefined) checked.args = list(plugin.args, `${where}.args`, LIMITS.args).map((arg, i) => argument(arg, `${where}.args[${i}]`));
  if (plugin.protocolVersions !== undefined) checked.protocolVersions = protocolVersions(plugin.protocolVersions, `${where}.protocolVersions`);
  const seen = new Set([checked.path]);
  if (plugin.interpreter !== undefined) {
    checked.interpreter = interpreter(plugin.interpreter, `${where}.interpreter`);
    if (!checked.interpreter.path.startsWith('/')) unique(seen, checked.interpreter.path, `${where}.interpreter.path`);
  }
  if (plugin.files !== undefined) {
    checked.files = list(plugin.files, `${where}.files`, LIMITS.files).map((file, i) => {
      const entry = checkFile(fields(file, `${where}.files[${i}]`, ['path', 'sha256', 'size'], []), `${where}.files[${i}]`);
      unique(seen, entry.path, `${where}.files[${i}].path`);
      return entry;
    });
  }
  if (plugin.version !== undefined) checked.version = checkPluginVersion(plugin.version, `${where}.version`);
  if (plugin.package !== undefined) checked.package = checkPackageFields(checked, relativePath(plugin.package, `${where}.package`), `${where}.package`);
  return checked;
}

function unique(seen: Set<string>, path: string, where: string): void {
  // One path with two digests: only one of them can be the bytes that get sealed.
  if (seen.has(path)) throw invalid(where, `${JSON.stringify(path)} is listed twice for this plugin`);
  seen.add(path);
}

function checkFile(file: Record<string, unknown>, where: string): ManifestFile {
  return { path: relativePath(file.path, `${where}.path`), sha256: sha256(file.sha256, `${where}.sha256`), size: size(file.size, `${where}.size`) };
}

function interpreter(value: unknown, where: string): ManifestInterpreter {
  const entry = fields(value, where, ['path'], ['sha256', 'size']);
  const pinned = entry.sha256 !== undefined || entry.size !== undefined;
  if (typeof entry.path !== 'string') throw invalid(`${where}.path`, 'must be a non-empty string');
  if (entry.path.startsWith('/')) {
    const path = `/${pathSegments(entry.path.slice(1), `${where}.path`)}`;
    return pinned ? { path, sha256: sha256(entry.sha256, `${where}.sha256`), size: size(entry.size, `${where}.size`) } : { path };
  }
  // A relative interpreter ships with the plugin, so it is plugin code like any other and must be hashed.
  if (!pinned) throw invalid(`${where}.sha256`, 'is required for an interpreter inside the plugin directory');
  return checkFile(entry, where);
}

function pathSegments(value: string, where: string): string {
  if (Buffer.byteLength(value, 'utf8') > LIMITS.pathBytes) throw invalid(where, `longer than ${LIMITS.pathBytes} bytes`);
  const unsafe = UNSAFE_PATH_CHARACTER.exec(value)?.[0];
  // What a reviewer reads before signing must be the path that is used: invisible, reordering (bidi) or
  // control characters show another name; an unpaired surrogate has several spellings for one file.
  if (unsafe !== undefined && hasLoneSurrogate(unsafe)) throw invalid(where, 'contains an unpaired surrogate (not Unicode text)');
  if (unsafe !== undefined) {
    const code = `U+${(unsafe.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
    throw invalid(where, `contains ${code}: no control, invisible or bidi characters (they show a reviewer another path), nor backslashes`);
  }
  for (const segment of value.split('/')) {
    // `..` would climb out of the plugin directory; `.` and empty segments give one file several spellings.
    if (segment === '..') throw invalid(where, `must not contain "..": ${JSON.stringify(value)}`);
    if (segment === '' || segment === '.') throw invalid(where, `must be normalised (no empty or "." segments): ${JSON.stringify(value)}`);
  }
  return value;
}

function protocolVersions(value: unknown, where: string): number[] {
  const versions = list(value, where, LIMITS.protocolVersions).map((v, i) => positiveInteger(v, `${where}[${i}]`, 0x7fffffff));
  if (versions.length === 0) throw invalid(where, 'must not be empty when given');
  if (new Set(versions).size !== versions.length) throw invalid(where, 'lists a version twice');
  return versions;
}

function argument(value: unknown, where: string): string {
  if (typeof value !== 'string' || value.length > LIMITS.argChars) throw invalid(where, `must be a string of at most ${LIMITS.argChars} characters`);
  // execve cannot pass a NUL; refusing it here keeps what was signed equal to what is run.
  if (value.includes('\0')) throw invalid(where, 'contains a NUL character');
  // As parsing refuses it: UTF-8 cannot carry it, so what runs would differ from what was signed.
  if (hasLoneSurrogate(value)) throw invalid(where, 'contains an unpaired surrogate (not Unicode text)');
  return value;
}

function expires(value: unknown): string {
  if (typeof value !== 'string' || !EXPIRES.test(value)) throw invalid('expires', 'must be an ISO 8601 UTC time such as 2030-01-31T00:00:00Z');
  const date = new Date(value);
  const canonical = value.length === 20 ? `${value.slice(0, 19)}.000Z` : value;
  if (Number.isNaN(date.getTime()) || date.toISOString() !== canonical) throw invalid('expires', `is not a real time: ${value}`);
  return value;
}

function sha256(value: unknown, where: string): string {
  if (typeof value !== 'string' || !SHA256.test(value)) throw invalid(where, 'must be 64 lower-case hex digits');
  return value;
}

function size(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw invalid(where, 'must be a whole number of bytes');
  return value;
}

function positiveInteger(value: unknown, where: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) throw invalid(where, `must be an integer from 1 to ${max}`);
  return value;
}

function list(value: unknown, where: string, max: number): unknown[] {
  if (!Array.isArray(value)) throw invalid(where, 'must be an array');
  if (value.length > max) throw invalid(where, `has more than ${max} entries`);
  return value;
}

function fields(value: unknown, where: string, required: readonly string[], optional: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(where, 'must be an object');
  const record = value as Record<string, unknown>;
  const prefix = where === 'manifest' ? '' : `${where}.`;
  for (const key of Object.keys(record)) {
    // An unknown field may be one a newer reader would honour; ignoring it would run the plugin without it.
    if (!required.includes(key) && !optional.includes(key)) throw invalid(`${prefix}${key}`, 'unknown field');
  }
  for (const key of required) if (!Object.hasOwn(record, key)) throw invalid(`${prefix}${key}`, 'missing');
  return record;
}

function utf8(bytes: Uint8Array): string {
  try {
    // ignoreBOM keeps a byte-order mark in the text, where JSON.parse refuses it, rather than dropping it unseen.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (error) {
    throw new GatehouseError('MANIFEST_INVALID', 'manifest: not UTF-8', { cause: error });
  }
}

function invalid(where: string, problem: string): GatehouseError {
  return new GatehouseError('MANIFEST_INVALID', `manifest: ${where} ${problem}`);
}

/**
 * The environment contract between a host and the plugin it launches, as go-plugin defines it: the host
 * passes a magic cookie, the protocol versions it speaks, a port range, optionally its public TLS
 * certificate and a socket directory; the plugin reads them back before it listens.
 *
 * The host side builds the plugin's whole environment (nothing is inherited implicitly); the plugin side
 * reads it strictly, because a malformed value means the binary was not launched by a real host.
 */
import { timingSafeEqual, X509Certificate, createHash } from 'node:crypto';
import { isAbsolute } from 'node:path';
import { GatehouseError, type GatehouseErrorCode } from '../errors.js';

export const PLUGIN_PROTOCOL_VERSIONS = 'PLUGIN_PROTOCOL_VERSIONS';
export const PLUGIN_MIN_PORT = 'PLUGIN_MIN_PORT';
export const PLUGIN_MAX_PORT = 'PLUGIN_MAX_PORT';
export const PLUGIN_CLIENT_CERT = 'PLUGIN_CLIENT_CERT';
export const PLUGIN_UNIX_SOCKET_DIR = 'PLUGIN_UNIX_SOCKET_DIR';
/** The group (gid or name) the plugin gives its sockets to, group-writable, so a host in it can connect. */
export const PLUGIN_UNIX_SOCKET_GROUP = 'PLUGIN_UNIX_SOCKET_GROUP';
export const PLUGIN_MULTIPLEX_GRPC = 'PLUGIN_MULTIPLEX_GRPC';

/** go-plugin's defaults when the host configures no port range. */
export const DEFAULT_MIN_PORT = 10000;
export const DEFAULT_MAX_PORT = 25000;

export const MAX_PROTOCOL_VERSIONS = 64;
/** Versions are positive integers of at most nine digits, so they fit a Go int on every platform. */
export const MAX_PROTOCOL_VERSION_DIGITS = 9;
export const MAX_PROTOCOL_VERSION = 999_999_999;
export const MAX_COOKIE_KEY_LENGTH = 128;
export const MAX_COOKIE_VALUE_LENGTH = 1024;
/** A P-521 certificate in PEM is about 1 KiB; the bound keeps the parser's input small. */
export const MAX_CLIENT_CERT_PEM_BYTES = 16 * 1024;
export const MAX_SOCKET_DIR_BYTES = 4096;

export interface MagicCookie {
  key: string;
  value: string;
}

export interface PluginEnvContract {
  cookie: MagicCookie;
  protocolVersions: readonly number[];
  /** The host's PUBLIC certificate, PEM. */
  clientCertificatePem?: string;
  /** Defaults 10000 / 25000, as go-plugin. */
  minPort?: number;
  maxPort?: number;
  unixSocketDir?: string;
  /** A gid, or a group name. */
  unixSocketGroup?: string;
  multiplexGrpc?: boolean;
}

export interface PluginEnv {
  /** In the order the host offered them. */
  protocolVersions: number[];
  /** Exactly one PEM CERTIFICATE block that parses, re-encoded canonically. */
  clientCertificatePem?: string;
  minPort: number;
  maxPort: number;
  /** An absolute path. */
  unixSocketDir?: string;
  /** A gid or a group name, as checkSocketGroup accepts it. */
  unixSocketGroup?: string;
  multiplexGrpc: boolean;
}

const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PROTOCOL_VERSION_PATTERN = new RegExp(`^[1-9][0-9]{0,${MAX_PROTOCOL_VERSION_DIGITS - 1}}$`);
const PORT_PATTERN = /^(?:0|[1-9][0-9]{0,4})$/;
const PEM_CERTIFICATE_PATTERN =
  /^-----BEGIN CERTIFICATE-----\r?\n((?:[A-Za-z0-9+/=]+\r?\n)+)-----END CERTIFICATE-----$/;
const PADDED_BASE64_PATTERN = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Every name the contract owns. Compared case-insensitively because Windows environment names are, so a
 * caller's "plugin_min_port" would replace ours there.
 */
function isContractName(name: string, cookieKey: string): boolean {
  const upper = name.toUpperCase();
  return upper.startsWith('PLUGIN_') || upper === cookieKey.toUpperCase();
}

export function isProtocolVersion(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= MAX_PROTOCOL_VERSION;
}

/** Checks a list of offered versions; `code` is whose mistake a bad list is. */
export function validateOfferedVersions(versions: readonly number[], code: GatehouseErrorCode): void {
  if (!Array.isArray(versions) || versions.length === 0) {
    throw new GatehouseError(code, 'protocol versions must be a non-empty list');
  }
  if (versions.length > MAX_PROTOCOL_VERSIONS) {
    throw new GatehouseError(code, `at most ${MAX_PROTOCOL_VERSIONS} protocol versions may be offered`);
  }
  const seen = new Set<number>();
  for (const version of versions) {
    if (!isProtocolVersion(version)) {
      throw new GatehouseError(code, `protocol versions must be integers from 1 to ${MAX_PROTOCOL_VERSION}`);
    }
    if (seen.has(version)) throw new GatehouseError(code, `protocol version ${version} is offered twice`);
    seen.add(version);
  }
}

export function formatProtocolVersions(versions: readonly number[]): string {
  validateOfferedVersions(versions, 'INVALID_OPTIONS');
  return versions.join(',');
}

/** Strict counterpart of formatProtocolVersions: "1,2", no spaces, no empty items, no duplicates. */
export function parseProtocolVersions(value: string): number[] {
  const fail = (why: string): GatehouseError =>
    new GatehouseError('ENV_INVALID', `${PLUGIN_PROTOCOL_VERSIONS} ${why}`);
  // Bounded before splitting, so a huge value costs one comparison.
  if (value.length > MAX_PROTOCOL_VERSIONS * (MAX_PROTOCOL_VERSION_DIGITS + 1)) throw fail('is too long');
  if (value === '') throw fail('is empty');
  const items = value.split(',');
  if (items.length > MAX_PROTOCOL_VERSIONS) throw fail(`lists more than ${MAX_PROTOCOL_VERSIONS} versions`);
  const versions: number[] = [];
  for (const item of items) {
    if (!PROTOCOL_VERSION_PATTERN.test(item)) {
      throw fail(`must be a comma-separated list of positive integers; got item ${JSON.stringify(item.slice(0, 16))}`);
    }
    const version = Number(item);
    if (versions.includes(version)) throw fail(`lists version ${version} twice`);
    versions.push(version);
  }
  return versions;
}

export function validateCookie(cookie: MagicCookie): void {
  const fail = (why: string): GatehouseError => new GatehouseError('INVALID_OPTIONS', `magic cookie ${why}`);
  if (typeof cookie !== 'object' || cookie === null) throw fail('must be an object with key and value');
  const { key, value } = cookie;
  if (typeof key !== 'string' || !ENV_NAME_PATTERN.test(key) || key.length > MAX_COOKIE_KEY_LENGTH) {
    throw fail(`key must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*, at most ${MAX_COOKIE_KEY_LENGTH} characters)`);
  }
  // The PLUGIN_ names belong to the contract; a cookie there would collide with (or impersonate) one of them.
  if (key.toUpperCase().startsWith('PLUGIN_')) throw fail(`key ${key} may not start with PLUGIN_`);
  if (typeof value !== 'string' || value.length === 0) throw fail('value must be a non-empty string');
  if (value.length > MAX_COOKIE_VALUE_LENGTH) throw fail(`value is longer than ${MAX_COOKIE_VALUE_LENGTH} characters`);
  // NUL would truncate the variable inside the OS, and line breaks would break go-plugin's own error output.
  if (/[\0\r\n]/.test(value)) throw fail('value may not contain NUL or line breaks');
}

/**
 * Checks a PEM that must hold exactly one public certificate and returns it re-encoded canonically.
 * Messages never include the text: it is not ours to print, and a broken one may hold anything.
 */
function checkCertificatePem(pem: string, code: GatehouseErrorCode, what: string): string {
  const fail = (why: string, cause?: unknown): GatehouseError =>
    new GatehouseError(code, `${what} ${why}`, { cause });
  if (typeof pem !== 'string') throw fail('must be a string');
  if (pem.length > MAX_CLIENT_CERT_PEM_BYTES || Buffer.byteLength(pem, 'utf8') > MAX_CLIENT_CERT_PEM_BYTES) {
    throw fail(`is larger than ${MAX_CLIENT_CERT_PEM_BYTES} bytes`);
  }
  // Looked for before anything else, anywhere in the text: a key handed to the plugin would let it
  // impersonate the host to every other plugin that trusts the host's certificate.
  if (pem.includes('PRIVATE KEY')) {
    throw fail('holds a private key; only the public certificate may be passed to a plugin');
  }
  const match = PEM_CERTIFICATE_PATTERN.exec(pem.trim());
  if (match === null || match[1] === undefined) {
    throw fail('must be exactly one PEM "CERTIFICATE" block');
  }
  const body = match[1].replace(/\r?\n/g, '');
  if (!PADDED_BASE64_PATTERN.test(body) || body.length % 4 !== 0) {
    throw fail('has a malformed base64 body');
  }
  const der = Buffer.from(body, 'base64');
  // Canonical base64 only: one certificate, one spelling.
  if (der.toString('base64') !== body || der[0] !== 0x30) throw fail('has a malformed base64 body');
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(der);
  } catch (error) {
    throw fail('does not parse as an X.509 certificate', error);
  }
  // The parser ignores trailing bytes; refusing them keeps what we pass on identical to what we checked.
  if (certificate.raw.length !== der.length) throw fail('has trailing bytes after the certificate');
  return certificate.toString();
}

function checkPort(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) {
    throw new GatehouseError('INVALID_OPTIONS', `${name} must be an integer from 0 to 65535`);
  }
  return value;
}

const GROUP_PATTERN = /^(?:[0-9]{1,10}|[A-Za-z_][A-Za-z0-9_.-]{0,31})$/;

/** The largest gid: 2^32 - 1 is (gid_t)-1, which chown takes for "leave the group unchanged". */
const MAX_GID = 4_294_967_294;

/** A gid or a POSIX group name, nothing else: the value ends up in a lookup and a chown. */
export function checkSocketGroup(value: unknown, code: GatehouseErrorCode, what: string): string {
  // Attack: a gid of (gid_t)-1 passed on to chown shares the socket with whatever group the plugin's user has.
  if (typeof value !== 'string' || !GROUP_PATTERN.test(value) || (/^[0-9]+$/.test(value) && Number(value) > MAX_GID)) {
    throw new GatehouseError(code, `${what} must be a group id (0 to ${MAX_GID}) or a group name`);
  }
  return value;
}

function checkSocketDir(value: unknown, code: GatehouseErrorCode, what: string): string {
  if (typeof value !== 'string' || !isAbsolute(value) || !value.startsWith('/')) {
    throw new GatehouseError(code, `${what} must be an absolute path`);
  }
  // NUL would end the path early inside the kernel: the plugin would create its socket somewhere else.
  if (value.includes('\0')) throw new GatehouseError(code, `${what} contains a NUL byte`);
  if (Buffer.byteLength(value, 'utf8') > MAX_SOCKET_DIR_BYTES) {
    throw new GatehouseError(code, `${what} is longer than ${MAX_SOCKET_DIR_BYTES} bytes`);
  }
  return value;
}

/**
 * The plugin's complete environment: `callerEnv` plus the contract variables. Nothing from the host's own
 * process.env is added here; a caller that wants to pass some of it must do so explicitly.
 */
export function buildPluginEnv(
  contract: PluginEnvContract,
  callerEnv: Readonly<Record<string, string>> = {},
): Record<string, string> {
  if (typeof contract !== 'object' || contract === null) {
    throw new GatehouseError('INVALID_OPTIONS', 'plugin environment contract must be an object');
  }
  validateCookie(contract.cookie);
  const cookieKey = contract.cookie.key;
  const versions = formatProtocolVersions(contract.protocolVersions);
  const minPort = checkPort(contract.minPort ?? DEFAULT_MIN_PORT, 'minPort');
  const maxPort = checkPort(contract.maxPort ?? DEFAULT_MAX_PORT, 'maxPort');
  if (minPort > maxPort) {
    throw new GatehouseError('INVALID_OPTIONS', `minPort ${minPort} is greater than maxPort ${maxPort}`);
  }

  const entries: [string, string][] = [];
  if (typeof callerEnv !== 'object' || callerEnv === null) {
    throw new GatehouseError('INVALID_OPTIONS', 'env must be an object of strings');
  }
  for (const [name, value] of Object.entries(callerEnv)) {
    const shown = JSON.stringify(name.slice(0, 64));
    // An "=" in a name moves the split point: "A=B" with value "C" reaches the child as A="B=C".
    if (name === '' || name.includes('=') || name.includes('\0')) {
      throw new GatehouseError('INVALID_OPTIONS', `env name ${shown} is empty or contains "=" or NUL`);
    }
    // Stops a caller's variable from overriding or shadowing the cookie or the PLUGIN_* contract (for
    // example a forged PLUGIN_CLIENT_CERT the plugin would then trust).
    if (isContractName(name, cookieKey)) {
      throw new GatehouseError(
        'INVALID_OPTIONS',
        `env may not set ${shown}: the magic cookie and PLUGIN_* variables belong to the plugin contract`,
      );
    }
    if (typeof value !== 'string' || value.includes('\0')) {
      throw new GatehouseError('INVALID_OPTIONS', `env value of ${shown} must be a string without NUL`);
    }
    entries.push([name, value]);
  }

  entries.push([cookieKey, contract.cookie.value]);
  entries.push([PLUGIN_MIN_PORT, String(minPort)]);
  entries.push([PLUGIN_MAX_PORT, String(maxPort)]);
  entries.push([PLUGIN_PROTOCOL_VERSIONS, versions]);
  if (contract.clientCertificatePem !== undefined) {
    entries.push([
      PLUGIN_CLIENT_CERT,
      checkCertificatePem(contract.clientCertificatePem, 'INVALID_OPTIONS', 'clientCertificatePem'),
    ]);
  }
  if (contract.unixSocketDir !== undefined) {
    entries.push([PLUGIN_UNIX_SOCKET_DIR, checkSocketDir(contract.unixSocketDir, 'INVALID_OPTIONS', 'unixSocketDir')]);
  }
  if (contract.unixSocketGroup !== undefined) {
    entries.push([PLUGIN_UNIX_SOCKET_GROUP, checkSocketGroup(contract.unixSocketGroup, 'INVALID_OPTIONS', 'unixSocketGroup')]);
  }
  // go-plugin sets the variable only to ask for multiplexing; its absence means "no".
  if (contract.multiplexGrpc === true) entries.push([PLUGIN_MULTIPLEX_GRPC, 'true']);
  // fromEntries defines own properties, so a caller's "__proto__" stays a plain variable name.
  return Object.fromEntries(entries);
}

/** The variable's value; an empty string counts as unset, as with Go's os.Getenv. */
function lookup(env: Readonly<Record<string, string | undefined>>, name: string): string | undefined {
  if (!Object.hasOwn(env, name)) return undefined;
  const value = env[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The same value set that Go's strconv.ParseBool accepts. */
const PARSE_BOOL: ReadonlyMap<string, boolean> = new Map([
  ...['1', 't', 'T', 'TRUE', 'true', 'True'].map((s) => [s, true] as const),
  ...['0', 'f', 'F', 'FALSE', 'false', 'False'].map((s) => [s, false] as const),
]);

function readPort(env: Readonly<Record<string, string | undefined>>, name: string, fallback: number): number {
  const value = lookup(env, name);
  if (value === undefined) return fallback;
  if (!PORT_PATTERN.test(value) || Number(value) > 65535) {
    throw new GatehouseError('ENV_INVALID', `${name} must be an integer from 0 to 65535, got ${JSON.stringify(value.slice(0, 16))}`);
  }
  return Number(value);
}

function sameSecret(a: string, b: string): boolean {
  // The cookie is not a secret in go-plugin's design, but a constant-time comparison costs nothing and
  // stops a timing probe from recovering it byte by byte if a deployment treats it as one.
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db);
}

/**
 * Plugin side: checks the cookie and reads the contract from `env` (normally process.env). A missing or
 * wrong cookie means the binary was run by hand or by the wrong host; anything malformed after that means
 * the launcher is not a host we can trust to have set up TLS, so we refuse to start rather than guess.
 */
export function readPluginEnv(env: Readonly<Record<string, string | undefined>>, cookie: MagicCookie): PluginEnv {
  validateCookie(cookie);
  if (typeof env !== 'object' || env === null) {
    throw new GatehouseError('INVALID_OPTIONS', 'env must be an object');
  }
  const presented = lookup(env, cookie.key);
  if (presented === undefined) {
    throw new GatehouseError(
      'COOKIE_MISMATCH',
      `${cookie.key} is not set: this program is a plugin and must be launched by its host, not run directly`,
    );
  }
  if (!sameSecret(presented, cookie.value)) {
    throw new GatehouseError(
      'COOKIE_MISMATCH',
      `${cookie.key} has the wrong value: this plugin was launched by a host built for a different plugin type`,
    );
  }

  const versions = lookup(env, PLUGIN_PROTOCOL_VERSIONS);
  // go-plugin falls back to its own version when this is missing; we do not, since every real host sets it
  // and a silent fallback would let a bare launcher skip negotiation.
  if (versions === undefined) {
    throw new GatehouseError(
      'ENV_INVALID',
      `${PLUGIN_PROTOCOL_VERSIONS} is not set: the plugin's host sets it (a gatehouse host, or go-plugin's since 1.0); ` +
        'run the plugin from its host, or try it with `gatehouse call`, rather than setting the variables by hand',
    );
  }
  const protocolVersions = parseProtocolVersions(versions);

  const minPort = readPort(env, PLUGIN_MIN_PORT, DEFAULT_MIN_PORT);
  const maxPort = readPort(env, PLUGIN_MAX_PORT, DEFAULT_MAX_PORT);
  if (minPort > maxPort) {
    throw new GatehouseError('ENV_INVALID', `${PLUGIN_MIN_PORT} ${minPort} is greater than ${PLUGIN_MAX_PORT} ${maxPort}`);
  }

  const result: PluginEnv = { protocolVersions, minPort, maxPort, multiplexGrpc: false };

  const certificate = lookup(env, PLUGIN_CLIENT_CERT);
  if (certificate !== undefined) {
    result.clientCertificatePem = checkCertificatePem(certificate, 'ENV_INVALID', PLUGIN_CLIENT_CERT);
  }

  const socketDir = lookup(env, PLUGIN_UNIX_SOCKET_DIR);
  if (socketDir !== undefined) {
    result.unixSocketDir = checkSocketDir(socketDir, 'ENV_INVALID', PLUGIN_UNIX_SOCKET_DIR);
  }

  const socketGroup = lookup(env, PLUGIN_UNIX_SOCKET_GROUP);
  if (socketGroup !== undefined) {
    result.unixSocketGroup = checkSocketGroup(socketGroup, 'ENV_INVALID', PLUGIN_UNIX_SOCKET_GROUP);
  }

  const multiplex = lookup(env, PLUGIN_MULTIPLEX_GRPC);
  if (multiplex !== undefined) {
    const parsed = PARSE_BOOL.get(multiplex);
    if (parsed === undefined) {
      throw new GatehouseError(
        'ENV_INVALID',
        `${PLUGIN_MULTIPLEX_GRPC} must be a boolean such as "true" or "false", got ${JSON.stringify(multiplex.slice(0, 16))}`,
      );
    }
    result.multiplexGrpc = parsed;
  }
  return result;
}

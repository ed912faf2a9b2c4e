/** The command line of `gatehouse call`: its options, their checks, and the help text. */
import { resolve } from 'node:path';
import { validateCookie, validateOfferedVersions, type MagicCookie } from '../transport/env.js';
import type { CallSource } from './call-plan.js';
import { type CommandLine, parseCommandLine, usageError as commandUsageError } from './command-line.js';
import { MANIFEST_OPTIONS, MANIFEST_OPTIONS_HELP, manifestSource, type ManifestSource } from './manifest-policy.js';
import { parseMethodName } from './proto-methods.js';

const DEFAULT_TIMEOUT_MS = 10_000;
/** setTimeout's largest delay; a longer one would fire at once. */
const MAX_TIMEOUT_MS = 2_147_483_647;

export const HELP = `Usage: gatehouse call [options] (--method pkg.Service/Method [--data JSON] | --script FILE|-) -- COMMAND [ARGS...]
       gatehouse call [options] (--method ... | --script ...) --manifest FILE --trust DIR --plugin NAME[@RANGE]

Launches COMMAND as a go-plugin gRPC plugin (mutual TLS unless --insecure), calls a method with a
request in proto3 JSON (bytes as base64), prints each response as one JSON line on stdout, and stops
the plugin. COMMAND runs without a shell and with an empty environment apart from go-plugin's
contract variables; a COMMAND without "/" is looked up in PATH. With --manifest, the plugin is the
manifest's entry NAME instead: the manifest is verified as by gatehouse verify, the entry's files are
sealed (copied privately and checked against the manifest), and the sealed copy runs with the entry's
args and protocol versions.

Options:
  --cookie KEY=VALUE           the plugin's magic cookie (its go-plugin HandshakeConfig); required
  --protocol-version N[,N...]  application protocol versions to offer (default 1, or the manifest
                               entry's protocolVersions)
  --proto FILE                 .proto file declaring the methods; repeatable. Without it, the methods
                               come from the plugin's gRPC reflection (go-plugin >= 1.2, gatehouse)
  --import-path DIR            directory searched for imported .proto files; repeatable
  --method pkg.Service/Method  the method to call: unary, or server-streaming (one line per message)
  --data JSON                  the request for --method (default {})
  --script FILE|-              JSON lines {"method": "pkg.Service/Method", "request": {...}}, run in
                               order against the same plugin; "-" reads standard input
  --sha256 HEX                 refuse to run COMMAND unless its bytes have this SHA-256; the checked
                               copy is what runs
${MANIFEST_OPTIONS_HELP}
  --plugin NAME[@RANGE]        the manifest entry to launch; its files are in the manifest's directory;
                               @RANGE (^1.2, ~2.0, or an exact version) picks the highest signed match
  --seal-dir DIR               where sealed copies are made (with --sha256 or --manifest); DIR and every
                               directory above it must be writable by this user or root alone
                               (default /var/cache/gatehouse/seal for root, else $XDG_RUNTIME_DIR/gatehouse/seal
                               or ~/.cache/gatehouse/seal)
  --insecure                   talk to the plugin without TLS: anyone on this machine could then
                               call it or impersonate it
  --timeout MS                 start timeout and per-call deadline (default ${DEFAULT_TIMEOUT_MS})
  --json-logs                  plugin logs on stderr as JSON lines instead of text
  -h, --help                   show this help

Exit status: 0 success, 1 failure, 2 usage error, 128+N when stopped by signal N.
`;

const OPTIONS = {
  cookie: { type: 'string' },
  'protocol-version': { type: 'string' },
  proto: { type: 'string', multiple: true },
  'import-path': { type: 'string', multiple: true },
  method: { type: 'string' },
  data: { type: 'string' },
  script: { type: 'string' },
  sha256: { type: 'string' },
  ...MANIFEST_OPTIONS,
  plugin: { type: 'string' },
  'seal-dir': { type: 'string' },
  insecure: { type: 'boolean' },
  timeout: { type: 'string' },
  'json-logs': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** What to launch: COMMAND (sealed when --sha256 is given), or a manifest's entry, always sealed. */
export type CallTarget =
  | { command: string; args: string[]; sha256: string | undefined }
  | { manifest: ManifestSource; plugin: string };

export interface CallSettings {
  cookie: MagicCookie;
  /** Undefined when --protocol-version is not given. */
  protocolVersions: number[] | undefined;
  protoFiles: string[];
  importPaths: string[];
  calls: CallSource;
  target: CallTarget;
  /** --seal-dir, absolute; undefined for the default seal root. */
  sealDir: string | undefined;
  insecure: boolean;
  timeoutMs: number;
  jsonLogs: boolean;
}

const usageError = (message: string) => commandUsageError('call', message);

/** The settings, or 'help' for --help; a USAGE error for anything wrong. */
export function parseCallArgs(argv: readonly string[]): CallSettings | 'help' {
  const parsed = parseCommandLine('call', argv, OPTIONS);
  const { values, tokens } = parsed;
  if (values.help === true) return 'help';

  if (values.cookie === undefined) {
    throw usageError(
      '--cookie KEY=VALUE is required: go-plugin plugins refuse to start without their magic cookie ' +
        '(the MagicCookieKey and MagicCookieValue of the plugin\'s HandshakeConfig)',
    );
  }
  const cookie = parseCookie(values.cookie);
  const protoFiles = values.proto ?? [];
  const calls = callSource(values.method, values.data, values.script);
  const manifest = manifestSource('call', values);
  const target = manifest === undefined ? commandTarget(tokens, parsed.positionals, values.sha256, values.plugin) : manifestTarget(manifest, parsed.positionals, values.sha256, values.plugin);

  return {
    cookie,
    protocolVersions: values['protocol-version'] === undefined ? undefined : parseVersions(values['protocol-version']),
    protoFiles,
    importPaths: values['import-path'] ?? [],
    calls,
    target,
    sealDir: sealDir(values['seal-dir'], target),
    insecure: values.insecure === true,
    timeoutMs: parseTimeout(values.timeout),
    jsonLogs: values['json-logs'] === true,
  };
}

type Tokens = CommandLine<typeof OPTIONS>['tokens'];

function sealDir(dir: string | undefined, target: CallTarget): string | undefined {
  if (dir === undefined) return undefined;
  // Nothing is sealed without a digest or a manifest: a --seal-dir then would be silently ignored.
  if ('command' in target && target.sha256 === undefined) throw usageError('--seal-dir goes with --sha256 or --manifest');
  return resolve(dir);
}

function commandTarget(tokens: Tokens, positionals: string[], sha256Text: string | undefined, plugin: string | undefined): CallTarget {
  if (plugin !== undefined) throw usageError('--plugin goes with --manifest');
  const terminator = tokens.findIndex((token) => token.kind === 'option-terminator');
  // COMMAND goes after "--" so that its own options are never read as ours.
  if (tokens.some((token, index) => token.kind === 'positional' && (terminator === -1 || index < terminator))) {
    throw usageError('COMMAND and its arguments go after --, e.g. gatehouse call ... -- ./plugin');
  }
  const [command, ...args] = positionals;
  if (command === undefined || command === '') {
    throw usageError('no plugin COMMAND: put it after --, e.g. gatehouse call ... -- ./plugin');
  }
  const sha256 = sha256Text?.toLowerCase();
  if (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256)) throw usageError('--sha256 must be 64 hexadecimal digits');
  return { command, args, sha256 };
}

function manifestTarget(manifest: ManifestSource, positionals: string[], sha256: string | undefined, plugin: string | undefined): CallTarget {
  // The signed manifest names what runs; a COMMAND or digest from the command line would bypass it.
  if (positionals.length > 0) throw usageError('with --manifest, the manifest names the command: give no COMMAND after --');
  if (sha256 !== undefined) throw usageError('--manifest and --sha256 are mutually exclusive');
  if (plugin === undefined || plugin === '') throw usageError('--plugin NAME is required with --manifest');
  return { manifest, plugin };
}

function callSource(method: string | undefined, data: string | undefined, script: string | undefined): CallSource {
  if (method !== undefined && script === undefined) {
    parseMethodName(method, '--method');
    return { method, data };
  }
  if (script !== undefined && method === undefined) {
    if (data !== undefined) throw usageError('--data goes with --method');
    return { script };
  }
  throw usageError('give exactly one of --method and --script');
}

function parseCookie(text: string): MagicCookie {
  const equals = text.indexOf('=');
  if (equals <= 0) throw usageError('--cookie must be KEY=VALUE, e.g. --cookie BASIC_PLUGIN=hello');
  const cookie = { key: text.slice(0, equals), value: text.slice(equals + 1) };
  try {
    validateCookie(cookie);
  } catch (error) {
    throw usageError(`cookie: ${(error as Error).message}`);
  }
  return cookie;
}

function parseVersions(text: string): number[] {
  const items = text.split(',');
  if (!items.every((item) => /^[1-9][0-9]{0,8}$/.test(item))) {
    throw usageError('--protocol-version must be a comma-separated list of positive integers, e.g. 1 or 1,2');
  }
  const versions = items.map(Number);
  try {
    validateOfferedVersions(versions, 'USAGE');
  } catch (error) {
    throw usageError(`--protocol-version: ${(error as Error).message}`);
  }
  return versions;
}

function parseTimeout(text: string | undefined): number {
  if (text === undefined) return DEFAULT_TIMEOUT_MS;
  const value = /^[1-9][0-9]{0,9}$/.test(text) ? Number(text) : NaN;
  if (!(value <= MAX_TIMEOUT_MS)) {
    throw usageError(`--timeout must be a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS}`);
  }
  return value;
}

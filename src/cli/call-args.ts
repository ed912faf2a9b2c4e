/** The command line of `gatehouse call`: its options, their checks, and the help text. */
import { parseArgs } from 'node:util';
import { GatehouseError } from '../errors.js';
import { validateCookie, validateOfferedVersions, type MagicCookie } from '../transport/env.js';
import type { CallSource } from './call-plan.js';
import { parseMethodName } from './proto-methods.js';

const DEFAULT_TIMEOUT_MS = 10_000;
/** setTimeout's largest delay; a longer one would fire at once. */
const MAX_TIMEOUT_MS = 2_147_483_647;

export const HELP = `Usage: gatehouse call [options] (--method pkg.Service/Method [--data JSON] | --script FILE|-) -- COMMAND [ARGS...]

Launches COMMAND as a go-plugin gRPC plugin (mutual TLS unless --insecure), calls a method with a
request in proto3 JSON (bytes as base64), prints each response as one JSON line on stdout, and stops
the plugin. COMMAND runs without a shell and with an empty environment apart from go-plugin's
contract variables; a COMMAND without "/" is looked up in PATH.

Options:
  --cookie KEY=VALUE           the plugin's magic cookie (its go-plugin HandshakeConfig); required
  --protocol-version N[,N...]  application protocol versions to offer (default 1)
  --proto FILE                 .proto file declaring the methods; repeatable, at least one
  --import-path DIR            directory searched for imported .proto files; repeatable
  --method pkg.Service/Method  the method to call: unary, or server-streaming (one line per message)
  --data JSON                  the request for --method (default {})
  --script FILE|-              JSON lines {"method": "pkg.Service/Method", "request": {...}}, run in
                               order against the same plugin; "-" reads standard input
  --sha256 HEX                 refuse to run COMMAND unless its bytes have this SHA-256; the checked
                               copy is what runs
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
  insecure: { type: 'boolean' },
  timeout: { type: 'string' },
  'json-logs': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface CallSettings {
  cookie: MagicCookie;
  protocolVersions: number[];
  protoFiles: string[];
  importPaths: string[];
  calls: CallSource;
  sha256: string | undefined;
  insecure: boolean;
  timeoutMs: number;
  jsonLogs: boolean;
  command: string;
  args: string[];
}

function usageError(message: string): GatehouseError {
  return new GatehouseError('USAGE', `${message} (see gatehouse call --help)`);
}

/** The settings, or 'help' for --help; a USAGE error for anything wrong. */
export function parseCallArgs(argv: readonly string[]): CallSettings | 'help' {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true, tokens: true });
  } catch (error) {
    throw usageError((error as Error).message);
  }
  const { values, tokens } = parsed;
  if (values.help === true) return 'help';

  // A repeated single-value option would silently keep only its last value: say so instead.
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const multiple = token.name === 'proto' || token.name === 'import-path';
    if (!multiple && seen.has(token.name)) throw usageError(`--${token.name} is given more than once`);
    seen.add(token.name);
  }
  const terminator = tokens.findIndex((token) => token.kind === 'option-terminator');
  // COMMAND goes after "--" so that its own options are never read as ours.
  if (tokens.some((token, index) => token.kind === 'positional' && (terminator === -1 || index < terminator))) {
    throw usageError('COMMAND and its arguments go after --, e.g. gatehouse call ... -- ./plugin');
  }
  const [command, ...args] = parsed.positionals;
  if (command === undefined || command === '') {
    throw usageError('no plugin COMMAND: put it after --, e.g. gatehouse call ... -- ./plugin');
  }

  if (values.cookie === undefined) {
    throw usageError(
      '--cookie KEY=VALUE is required: go-plugin plugins refuse to start without their magic cookie ' +
        '(the MagicCookieKey and MagicCookieValue of the plugin\'s HandshakeConfig)',
    );
  }
  const cookie = parseCookie(values.cookie);
  const protoFiles = values.proto ?? [];
  if (protoFiles.length === 0) throw usageError('at least one --proto FILE is required');
  const calls = callSource(values.method, values.data, values.script);
  const sha256 = values.sha256?.toLowerCase();
  if (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256)) throw usageError('--sha256 must be 64 hexadecimal digits');

  return {
    cookie,
    protocolVersions: parseVersions(values['protocol-version'] ?? '1'),
    protoFiles,
    importPaths: values['import-path'] ?? [],
    calls,
    sha256,
    insecure: values.insecure === true,
    timeoutMs: parseTimeout(values.timeout),
    jsonLogs: values['json-logs'] === true,
    command,
    args,
  };
}

function callSource(method: string | undefined, data: string | undefined, script: string | undefined): CallSource {
  if (method !== undefined && script === undefined) {
    parseMethodName(method, '--method');
    return { method, data: data ?? '{}' };
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

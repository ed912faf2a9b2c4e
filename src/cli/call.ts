/**
 * `gatehouse call`: grpcurl for go-plugin plugins. Launches a plugin through the host API, calls one
 * method (or a script of methods) with requests written in proto3 JSON, prints each response as one
 * JSON line on stdout and stops the plugin. Plugin logs and the one failure line go to stderr.
 */
import { constants, createReadStream, statSync } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { basename, delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import type { Method, Namespace, Root, Service, Type } from 'protobufjs';
import { GatehouseError, isGatehouseError, type GatehouseErrorCode } from '../errors.js';
import { launch } from '../host/launch.js';
import type { Plugin } from '../host/plugin.js';
import type { Logger, LogFn } from '../logger.js';
import { validateCookie, validateOfferedVersions, type MagicCookie } from '../transport/env.js';
import { sealPlugin } from '../verify/seal.js';
import { isPlainObject, parseJson, type Json } from './json.js';
import { JsonMappingError, messageFromProto3Json, messageToProto3Json } from './proto-json.js';

const DEFAULT_TIMEOUT_MS = 10_000;
/** setTimeout's largest delay; a longer one would fire at once. */
const MAX_TIMEOUT_MS = 2_147_483_647;
/** Bounds on a --script, so a runaway generator or a wrong file cannot make us hold it all in memory. */
const MAX_SCRIPT_LINE_BYTES = 4 * 1024 * 1024;
const MAX_SCRIPT_LINES = 10_000;
const MAX_SCRIPT_BYTES = 64 * 1024 * 1024;
/** How many methods an unknown-method error lists. */
const MAX_LISTED_METHODS = 50;
/** How much of the plugin's last log message a failure line quotes. */
const MAX_QUOTED_MESSAGE_CHARS = 300;
/** go-plugin's first line for a missing or wrong magic cookie (our serve() prints the same). */
const COOKIE_REFUSAL = 'This binary is a plugin.';

const HELP = `Usage: gatehouse call [options] (--method pkg.Service/Method [--data JSON] | --script FILE|-) -- COMMAND [ARGS...]

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

interface CallSettings {
  cookie: MagicCookie;
  protocolVersions: number[];
  protoFiles: string[];
  importPaths: string[];
  /** Exactly one of method and script is set. */
  method: string | undefined;
  data: string;
  script: string | undefined;
  sha256: string | undefined;
  insecure: boolean;
  timeoutMs: number;
  jsonLogs: boolean;
  command: string;
  args: string[];
}

/** Runs `gatehouse call` and returns its exit code; failures are reported on stderr, never thrown. */
export async function callCommand(argv: readonly string[]): Promise<number> {
  const watch: PluginWatch = { cookieRejected: false, lastMessage: undefined };
  const context: FailureContext = { launched: false, insecure: false, cookieKey: '', watch };
  const interruption = watchSignals();
  try {
    const settings = parseCallArgs(argv);
    if (settings === 'help') {
      await writeStdout(HELP.trimEnd());
      return 0;
    }
    context.insecure = settings.insecure;
    context.cookieKey = settings.cookie.key;
    await runCall(settings, context, interruption.stopped);
    return 0;
  } catch (error) {
    const { line, exitCode } = describeFailure(error, context);
    process.stderr.write(`${escapeControls(`gatehouse call: ${line}`)}\n`);
    return exitCode;
  } finally {
    interruption.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------
// Command line

function usageError(message: string): GatehouseError {
  return new GatehouseError('USAGE', `${message} (see gatehouse call --help)`);
}

function parseCallArgs(argv: readonly string[]): CallSettings | 'help' {
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
  if ((values.method === undefined) === (values.script === undefined)) {
    throw usageError('give exactly one of --method and --script');
  }
  if (values.data !== undefined && values.method === undefined) throw usageError('--data goes with --method');
  if (values.method !== undefined) parseMethodName(values.method, '--method');
  const sha256 = values.sha256?.toLowerCase();
  if (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256)) throw usageError('--sha256 must be 64 hexadecimal digits');

  return {
    cookie,
    protocolVersions: parseVersions(values['protocol-version'] ?? '1'),
    protoFiles,
    importPaths: values['import-path'] ?? [],
    method: values.method,
    data: values.data ?? '{}',
    script: values.script,
    sha256,
    insecure: values.insecure === true,
    timeoutMs: parseTimeout(values.timeout),
    jsonLogs: values['json-logs'] === true,
    command,
    args,
  };
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

/** Splits "pkg.Service/Method" into the service's full name and the method's name. */
function parseMethodName(text: string, where: string): { service: string; method: string } {
  const match = /^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\/([A-Za-z_][A-Za-z0-9_]*)$/.exec(text);
  if (match === null || match[1] === undefined || match[2] === undefined) {
    throw new GatehouseError('USAGE', `${where}: ${JSON.stringify(text.slice(0, 200))} is not a method name of the form pkg.Service/Method`);
  }
  return { service: match[1], method: match[2] };
}

// ---------------------------------------------------------------------------------------------------
// Running

interface PlannedCall {
  /** "script line N: " or "" for --method, put in front of a failure. */
  label: string;
  method: Method;
  request: Record<string, unknown>;
}

async function runCall(settings: CallSettings, context: FailureContext, stopped: Promise<never>): Promise<void> {
  const root = loadProtos(settings.protoFiles, settings.importPaths);
  const calls = await Promise.race([planCalls(settings, root), stopped]);
  const command = await resolveCommand(settings.command);
  const name = basename(command);
  // The sealed copy is what runs, never COMMAND itself: the bytes executed are the bytes hashed.
  const sealed =
    settings.sha256 === undefined
      ? undefined
      : await sealPlugin({ name, path: name, sha256: settings.sha256, args: settings.args }, dirname(command));
  try {
    const launching = launch({
      command: sealed?.command ?? command,
      args: sealed?.args ?? settings.args,
      name,
      cookie: settings.cookie,
      protocolVersions: settings.protocolVersions,
      logger: cliLogger(settings.jsonLogs, context.watch),
      startTimeoutMs: settings.timeoutMs,
      insecurePlaintext: settings.insecure,
    });
    const plugin = await Promise.race([launching, stopped]).catch(async (error: unknown) => {
      // launch() cannot be cancelled; a plugin it still brings up must be stopped, not orphaned.
      if (error instanceof Interrupted) await launching.then((late) => late.kill(), () => undefined);
      throw error;
    });
    context.launched = true;
    let failure: { error: unknown } | undefined;
    try {
      for (const call of calls) await Promise.race([callOnce(plugin, call, settings.timeoutMs), stopped]);
    } catch (error) {
      failure = { error };
    }
    try {
      await plugin.kill();
    } catch (error) {
      failure ??= { error };
    }
    if (failure !== undefined) throw failure.error;
  } finally {
    await sealed?.dispose();
  }
}

async function callOnce(plugin: Plugin, call: PlannedCall, timeoutMs: number): Promise<void> {
  const { method } = call;
  const definition = methodDefinition(method);
  const responseType = method.resolvedResponseType as Type;
  const print = async (response: unknown): Promise<void> =>
    writeStdout(escapeControls(JSON.stringify(responseToJson(responseType, response, call))));
  try {
    if (!definition.responseStream) {
      const client = plugin.client({ [method.name]: definition });
      const invoke = client[method.name] as (request: unknown, options: { timeoutMs: number }) => Promise<unknown>;
      await print(await invoke(call.request, { timeoutMs }));
      return;
    }
    const stream = plugin
      .grpcClient({ [method.name]: definition })
      .makeServerStreamRequest(definition.path, definition.requestSerialize, definition.responseDeserialize, call.request, {
        deadline: Date.now() + timeoutMs,
      });
    await new Promise<void>((resolvePromise, reject) => {
      stream.on('data', (response: unknown) => {
        // One message at a time: a fast plugin cannot queue up more output than stdout takes.
        stream.pause();
        print(response).then(
          () => stream.resume(),
          (error: unknown) => {
            stream.cancel();
            reject(error);
          },
        );
      });
      stream.on('error', (error: grpc.ServiceError) => {
        const status = grpc.status[error.code] ?? String(error.code);
        reject(new GatehouseError('CALL_FAILED', `${definition.path} failed: ${status}: ${error.details}`, { cause: error }));
      });
      // 'end' rather than 'status': grpc-js reports the status as soon as it arrives, before the
      // messages still buffered behind a pause have been printed. A failed status comes as 'error' first.
      stream.on('end', () => resolvePromise());
    });
  } catch (error) {
    if (call.label === '' || !isGatehouseError(error)) throw error;
    throw new GatehouseError(error.code, `${call.label}${error.message}`, { cause: error });
  }
}

function responseToJson(type: Type, response: unknown, call: PlannedCall): Json {
  try {
    return messageToProto3Json(type, response as Record<string, unknown>);
  } catch (error) {
    if (!(error instanceof JsonMappingError)) throw error;
    throw new GatehouseError(
      'CALL_FAILED',
      `${call.label}${fullMethodName(call.method)}: the response cannot be written as proto3 JSON: ${error.message}`,
    );
  }
}

function methodDefinition(method: Method): grpc.MethodDefinition<Record<string, unknown>, unknown> {
  const requestType = method.resolvedRequestType as Type;
  const responseType = method.resolvedResponseType as Type;
  return {
    path: `/${fullMethodName(method)}`,
    requestStream: false,
    responseStream: method.responseStream === true,
    requestSerialize: (message) => Buffer.from(requestType.encode(message).finish()),
    requestDeserialize: (bytes) => requestType.decode(bytes) as unknown as Record<string, unknown>,
    responseSerialize: (message) => Buffer.from(responseType.encode(message as Record<string, unknown>).finish()),
    responseDeserialize: (bytes) => responseType.decode(bytes),
  };
}

// ---------------------------------------------------------------------------------------------------
// Protos, methods and requests

function loadProtos(files: readonly string[], importPaths: readonly string[]): Root {
  const directories = importPaths.map((directory) => resolve(directory));
  const root = new protobuf.Root();
  // Imports are looked up in the --import-path directories first, then next to the importing file,
  // as @grpc/proto-loader does; every path is made absolute so one file never loads twice.
  root.resolvePath = (origin, target) => {
    if (isAbsolute(target)) return target;
    for (const directory of directories) {
      const candidate = join(directory, target);
      try {
        if (statSync(candidate).isFile()) return candidate;
      } catch {
        // not in this directory
      }
    }
    return origin === '' ? resolve(target) : resolve(origin, '..', target);
  };
  try {
    // keepCase: field names stay as written in the .proto; JSON names are derived from them as protoc does.
    root.loadSync(files.map((file) => resolve(file)), { keepCase: true });
    root.resolveAll();
  } catch (error) {
    throw new GatehouseError('USAGE', `proto: ${(error as Error).message}`, { cause: error });
  }
  return root;
}

function allServices(namespace: Namespace, into: Service[] = []): Service[] {
  for (const nested of namespace.nestedArray) {
    if (nested instanceof protobuf.Service) into.push(nested);
    if (nested instanceof protobuf.Namespace) allServices(nested, into);
  }
  return into;
}

function fullMethodName(method: Method): string {
  return `${(method.parent as Service).fullName.slice(1)}/${method.name}`;
}

function findMethod(root: Root, name: string, where: string, protoFiles: readonly string[]): Method {
  const wanted = parseMethodName(name, where);
  const services = allServices(root);
  const service = services.find((candidate) => candidate.fullName === `.${wanted.service}`);
  // hasOwn: a method called "toString" must not find Object.prototype's.
  const method = service !== undefined && Object.hasOwn(service.methods, wanted.method) ? service.methods[wanted.method] : undefined;
  if (method === undefined) {
    const known = services.flatMap((candidate) => candidate.methodsArray.map(fullMethodName));
    const listed = known.length === 0 ? 'no services' : `methods found: ${known.slice(0, MAX_LISTED_METHODS).join(', ')}`;
    const more = known.length > MAX_LISTED_METHODS ? ` and ${known.length - MAX_LISTED_METHODS} more` : '';
    throw new GatehouseError('USAGE', `${where}: method ${name} not found in ${protoFiles.join(', ')}; ${listed}${more}`);
  }
  if (method.requestStream === true) {
    throw new GatehouseError(
      'USAGE',
      `${where}: ${name} is a ${method.responseStream === true ? 'bidirectional' : 'client'}-streaming method; ` +
        'gatehouse call supports unary and server-streaming methods',
    );
  }
  return method;
}

function requestFromJson(method: Method, json: unknown, where: string): Record<string, unknown> {
  try {
    return messageFromProto3Json(method.resolvedRequestType as Type, json);
  } catch (error) {
    if (!(error instanceof JsonMappingError)) throw error;
    throw new GatehouseError('USAGE', `${where}: request for ${fullMethodName(method)}: ${error.message}`);
  }
}

/** Every call is read, resolved and converted before the plugin starts: a bad line runs nothing. */
async function planCalls(settings: CallSettings, root: Root): Promise<PlannedCall[]> {
  if (settings.method !== undefined) {
    const method = findMethod(root, settings.method, '--method', settings.protoFiles);
    const request = requestFromJson(method, parseJson(settings.data, '--data'), '--data');
    return [{ label: '', method, request }];
  }
  const script = settings.script as string;
  const lines = await readScript(script, scriptName(script));
  const calls: PlannedCall[] = [];
  for (const [index, line] of lines.entries()) {
    const where = `script line ${index + 1}`;
    if (line.trim() === '') continue;
    if (Buffer.byteLength(line) > MAX_SCRIPT_LINE_BYTES) {
      throw new GatehouseError('USAGE', `${where}: longer than ${MAX_SCRIPT_LINE_BYTES} bytes`);
    }
    const entry = parseJson(line, where);
    if (!isPlainObject(entry) || typeof entry.method !== 'string') {
      throw new GatehouseError('USAGE', `${where}: expected {"method": "pkg.Service/Method", "request": {...}}`);
    }
    const extra = Object.keys(entry).find((key) => key !== 'method' && key !== 'request');
    if (extra !== undefined) throw new GatehouseError('USAGE', `${where}: unknown key ${JSON.stringify(extra)}`);
    const method = findMethod(root, entry.method, where, settings.protoFiles);
    calls.push({ label: `${where}: `, method, request: requestFromJson(method, entry.request ?? {}, where) });
  }
  if (calls.length === 0) throw new GatehouseError('USAGE', `${scriptName(script)} has no calls`);
  return calls;
}

function scriptName(script: string): string {
  return script === '-' ? 'script (standard input)' : `script ${script}`;
}

/** The script's lines; refuses it whole past the size or line-count bounds, or when not UTF-8. */
async function readScript(script: string, where: string): Promise<string[]> {
  const input = script === '-' ? process.stdin : createReadStream(script);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of input) {
      size += (chunk as Buffer).length;
      if (size > MAX_SCRIPT_BYTES) throw new GatehouseError('USAGE', `${where}: larger than ${MAX_SCRIPT_BYTES} bytes`);
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    if (isGatehouseError(error)) throw error;
    throw new GatehouseError('USAGE', `${where}: cannot be read: ${(error as Error).message}`, { cause: error });
  } finally {
    if (script !== '-') input.destroy();
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new GatehouseError('USAGE', `${where}: not valid UTF-8`);
  }
  const lines = text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  if (lines.at(-1) === '') lines.pop();
  if (lines.length > MAX_SCRIPT_LINES) throw new GatehouseError('USAGE', `${where}: more than ${MAX_SCRIPT_LINES} lines`);
  return lines;
}

// ---------------------------------------------------------------------------------------------------
// The command itself

/** The absolute path of COMMAND: as given when it has a "/", else the first executable match in PATH. */
async function resolveCommand(command: string): Promise<string> {
  if (command.includes('/')) return resolve(command);
  for (const directory of (process.env.PATH ?? '').split(delimiter)) {
    // Empty and relative PATH entries name the working directory, which need not be ours to trust.
    if (!isAbsolute(directory)) continue;
    const candidate = join(directory, command);
    try {
      if ((await stat(candidate)).isFile()) {
        await access(candidate, constants.X_OK);
        return candidate;
      }
    } catch {
      // not here, or not executable by us
    }
  }
  throw new GatehouseError('SPAWN_FAILED', `cannot start plugin: ${JSON.stringify(command)} not found in PATH`);
}

// ---------------------------------------------------------------------------------------------------
// Plugin logs

/** What the plugin's logs told us, for a failure line that explains an early exit. */
interface PluginWatch {
  cookieRejected: boolean;
  lastMessage: string | undefined;
}

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/**
 * Writes plugin logs to stderr: records at info and above, and every line the plugin wrote that is not
 * an hclog record (the host logs those at debug, but they are often all a failing plugin says).
 */
function cliLogger(json: boolean, watch: PluginWatch): Logger {
  const logAt =
    (level: Level): LogFn =>
    (fields, message) => {
      const stream = fields.stream === 'stderr' || fields.stream === 'stdout' ? fields.stream : undefined;
      if (stream === 'stderr' && message.startsWith(COOKIE_REFUSAL)) watch.cookieRejected = true;
      if (stream === undefined && (level === 'trace' || level === 'debug')) return;
      watch.lastMessage = message;
      const line = json
        ? JSON.stringify({ ...fields, level, time: new Date().toISOString(), msg: message })
        : humanLogLine(level, stream, fields, message);
      process.stderr.write(`${escapeControls(line)}\n`);
    };
  return { trace: logAt('trace'), debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') };
}

/** `[plugin] level: message {fields}`, with the plugin's own fields shown beside the host's. */
function humanLogLine(level: Level, stream: string | undefined, record: Record<string, unknown>, message: string): string {
  const name = typeof record.plugin === 'string' ? record.plugin : 'plugin';
  const { plugin: _plugin, pluginTime: _time, stream: _stream, fields: own, ...host } = record;
  const shown = { ...(isPlainObject(own) ? own : {}), ...host };
  const suffix = Object.keys(shown).length === 0 ? '' : ` ${JSON.stringify(shown)}`;
  return `[${name}] ${stream ?? level}: ${message}${suffix}`;
}

/**
 * Escapes what a terminal would act on instead of showing: C0 and C1 controls (ANSI escapes, line
 * breaks that forge extra lines), DEL and bidirectional overrides. Applied to JSON text too, where it
 * only ever touches string contents and yields valid JSON escapes.
 */
function escapeControls(text: string): string {
  return text.replace(/[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu, (char) =>
    char === '\t' ? char : `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

// ---------------------------------------------------------------------------------------------------
// Failures

class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

/**
 * The first SIGINT or SIGTERM stops the run and lets it stop the plugin gracefully; a second one exits
 * at once (the host's exit hook still SIGKILLs the plugin).
 */
function watchSignals(): { stopped: Promise<never>; dispose(): void } {
  let stop: (error: Interrupted) => void = () => {};
  const stopped = new Promise<never>((_, reject) => (stop = reject));
  stopped.catch(() => {}); // observed through Promise.race; this only marks it handled
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) process.exit(128 + osConstants.signals[signal as 'SIGINT' | 'SIGTERM']);
    signalled = true;
    stop(new Interrupted(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    stopped,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

interface FailureContext {
  /** Whether the plugin completed its handshake. */
  launched: boolean;
  insecure: boolean;
  cookieKey: string;
  watch: PluginWatch;
}

/** The word that says which step failed; codes whose message already says it have none. */
const FAILURE_STEPS: Partial<Record<GatehouseErrorCode, string>> = {
  SPAWN_FAILED: 'launch',
  START_TIMEOUT: 'handshake',
  HANDSHAKE_INVALID: 'handshake',
  HANDSHAKE_TOO_LONG: 'handshake',
  CORE_VERSION_MISMATCH: 'handshake',
  NETWORK_UNSUPPORTED: 'handshake',
  ADDRESS_NOT_LOOPBACK: 'handshake',
  NETRPC_UNSUPPORTED: 'handshake',
  PROTOCOL_VERSION_MISMATCH: 'version',
  PLAINTEXT_REFUSED: 'TLS',
  TLS_FAILED: 'TLS',
  CERTIFICATE_INVALID: 'TLS',
  CERTIFICATE_MISMATCH: 'TLS',
  CONNECT_FAILED: 'connect',
  HEALTH_CHECK_FAILED: 'connect',
  KILL_FAILED: 'kill',
  FILE_NOT_FOUND: 'sha256',
  FILE_NOT_REGULAR: 'sha256',
  FILE_UNREADABLE: 'sha256',
  SEAL_FAILED: 'sha256',
  SIZE_MISMATCH: 'sha256',
  DIGEST_MISMATCH: 'sha256',
  INVALID_OPTIONS: 'options',
};

/** What the user can do about a failure whose message cannot say it. */
const FAILURE_HINTS: Partial<Record<GatehouseErrorCode, string>> = {
  DIGEST_MISMATCH: '; COMMAND was not run',
  FILE_NOT_REGULAR: '; --sha256 needs COMMAND to be a regular file (for a link, give the path it points to: readlink -f)',
};

/** One line (without the "gatehouse call: " prefix) and the exit code for a failure. */
function describeFailure(error: unknown, context: FailureContext): { line: string; exitCode: number } {
  if (error instanceof Interrupted) {
    return { line: error.message, exitCode: 128 + osConstants.signals[error.signal as 'SIGINT' | 'SIGTERM'] };
  }
  // Anything else is unexpected: its message only, never a stack trace.
  if (!isGatehouseError(error)) return { line: firstLine(error instanceof Error ? error.message : String(error)), exitCode: 1 };
  if (error.code === 'USAGE') return { line: firstLine(error.message), exitCode: 2 };

  const said = context.watch.lastMessage;
  const lastWords = said === undefined ? '' : `; last plugin message: ${JSON.stringify(said.slice(0, MAX_QUOTED_MESSAGE_CHARS))}`;
  // The plugin's stderr tail is already on stderr as log lines, so only the first line is kept here.
  const message = firstLine(error.message).replace(/; last stderr lines:$/, '');
  if (error.code === 'PLUGIN_EXITED' && !context.launched) {
    const exit = /\((exit code -?\d+|killed by [A-Z0-9]+)\)/.exec(message)?.[1] ?? 'unknown exit status';
    if (context.watch.cookieRejected) {
      return {
        line:
          `cookie: the plugin rejected the magic cookie ${context.cookieKey} (it printed go-plugin's ` +
          `"This binary is a plugin" message, ${exit}); check --cookie against the plugin's HandshakeConfig`,
        exitCode: 1,
      };
    }
    if (context.insecure) {
      return {
        line: `TLS: the plugin exited before its handshake (${exit}) when launched with --insecure; it probably requires mutual TLS, so drop --insecure${lastWords}`,
        exitCode: 1,
      };
    }
    return { line: `plugin exited before its handshake (${exit})${lastWords}`, exitCode: 1 };
  }
  const step = FAILURE_STEPS[error.code];
  const detail = error.code === 'START_TIMEOUT' ? lastWords : (FAILURE_HINTS[error.code] ?? '');
  const body = message.replace(/^plugin handshake: /, '');
  return { line: `${step === undefined ? '' : `${step}: `}${body}${detail}`, exitCode: 1 };
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0] ?? '';
}

/** Resolves once the line is handed to the OS, so that exiting afterwards cannot lose it. */
function writeStdout(line: string): Promise<void> {
  return new Promise((resolvePromise, reject) =>
    process.stdout.write(`${line}\n`, (error) => (error ? reject(new Error(`cannot write to stdout: ${error.message}`)) : resolvePromise())),
  );
}

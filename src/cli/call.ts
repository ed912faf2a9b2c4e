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
import type { Enum, Field, MapField, Method, Namespace, Root, Service, Type } from 'protobufjs';
import { GatehouseError, isGatehouseError, type GatehouseErrorCode } from '../errors.js';
import { launch } from '../host/launch.js';
import type { Plugin } from '../host/plugin.js';
import type { Logger, LogFn } from '../logger.js';
import { validateCookie, validateOfferedVersions, type MagicCookie } from '../transport/env.js';
import { sealPlugin } from '../verify/seal.js';

const DEFAULT_TIMEOUT_MS = 10_000;
/** setTimeout's largest delay; a longer one would fire at once. */
const MAX_TIMEOUT_MS = 2_147_483_647;
/** Bounds on a --script, so a runaway generator or a wrong file cannot make us hold it all in memory. */
const MAX_SCRIPT_LINE_BYTES = 4 * 1024 * 1024;
const MAX_SCRIPT_LINES = 10_000;
const MAX_SCRIPT_BYTES = 64 * 1024 * 1024;
/** protobuf's own default nesting limit; deeper JSON is refused rather than overflowing the stack. */
const MAX_NESTING = 100;
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
    return messageToJson(type, response as Record<string, unknown>, 0);
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
    return messageFromJson(method.resolvedRequestType as Type, json, '$', 0);
  } catch (error) {
    if (!(error instanceof JsonMappingError)) throw error;
    throw new GatehouseError('USAGE', `${where}: request for ${fullMethodName(method)}: ${error.message}`);
  }
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new GatehouseError('USAGE', `${where}: not valid JSON: ${(error as Error).message}`);
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

// ---------------------------------------------------------------------------------------------------
// proto3 JSON (https://protobuf.dev/programming-guides/json/) over protobufjs reflection.
// Requests are checked strictly (unknown fields, wrong types and out-of-range numbers are errors, not
// silently coerced as protobufjs's fromObject would); responses print fields without presence even at
// their default value, 64-bit integers as strings, bytes as standard base64, enums by name.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A request or response that does not fit its type; `path` locates it in the JSON. */
class JsonMappingError extends Error {}

function mappingError(path: string, message: string): JsonMappingError {
  return new JsonMappingError(`${path}: ${message}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** protoc's JSON name: underscores dropped, the letter after each one upper-cased. */
function jsonName(field: Field): string {
  const declared: unknown = field.options?.json_name;
  if (typeof declared === 'string') return declared;
  return field.name.replace(/_+([a-z0-9]?)/gi, (_match, next: string) => next.toUpperCase());
}

const fieldsByJsonKey = new WeakMap<Type, Map<string, Field>>();

/** A field by its JSON name or its proto name; proto3 JSON parsers must accept both. */
function fieldForKey(type: Type, key: string): Field | undefined {
  let byKey = fieldsByJsonKey.get(type);
  if (byKey === undefined) {
    byKey = new Map();
    for (const field of type.fieldsArray) {
      byKey.set(field.name, field);
      byKey.set(jsonName(field), field);
    }
    fieldsByJsonKey.set(type, byKey);
  }
  return byKey.get(key);
}

/** Message fields, oneof members, proto3 `optional` and proto2 fields are printed only when set. */
function hasPresence(field: Field): boolean {
  if (field.repeated || field.map) return false;
  return field.resolvedType instanceof protobuf.Type || Boolean(field.hasPresence);
}

function acceptsNull(field: Field): boolean {
  const name = field.resolvedType?.fullName;
  return name === '.google.protobuf.Value' || name === '.google.protobuf.NullValue';
}

// --- JSON to message

function messageFromJson(type: Type, json: unknown, path: string, depth: number): Record<string, unknown> {
  if (depth > MAX_NESTING) throw mappingError(path, `nested more than ${MAX_NESTING} messages deep`);
  const special = WELL_KNOWN_TYPES.get(type.fullName);
  if (special !== undefined) return special.fromJson(json, path, type, depth);
  if (!isPlainObject(json)) throw mappingError(path, `expected an object for ${type.fullName.slice(1)}, got ${describe(json)}`);
  const entries: [string, unknown][] = [];
  const oneofs = new Map<string, string>();
  for (const [key, value] of Object.entries(json)) {
    const at = `${path}.${key}`;
    const field = fieldForKey(type, key);
    if (field === undefined) throw mappingError(at, `${type.fullName.slice(1)} has no field ${JSON.stringify(key)}`);
    if (entries.some(([name]) => name === field.name)) throw mappingError(at, `field ${field.name} is given twice`);
    if (value === null && !acceptsNull(field)) continue;
    if (field.partOf !== null) {
      const other = oneofs.get(field.partOf.name);
      if (other !== undefined) throw mappingError(at, `${other} and ${key} belong to the same oneof; set only one`);
      oneofs.set(field.partOf.name, key);
    }
    entries.push([field.name, fieldFromJson(field, value, at, depth)]);
  }
  // fromEntries defines own properties, so a "__proto__" key stays data.
  return Object.fromEntries(entries);
}

function fieldFromJson(field: Field, value: unknown, path: string, depth: number): unknown {
  if (field.map) {
    if (!isPlainObject(value)) throw mappingError(path, `expected an object (map), got ${describe(value)}`);
    const keyType = (field as unknown as MapField).keyType;
    // protobufjs writes every bool map key as true, so such a request could not be sent as written.
    if (keyType === 'bool') throw mappingError(path, 'map fields with bool keys are not supported in requests');
    return Object.fromEntries(
      Object.entries(value).map(([key, element]) => [
        mapKeyFromJson(keyType, key, `${path}[${JSON.stringify(key)}]`),
        elementFromJson(field, element, `${path}[${JSON.stringify(key)}]`, depth),
      ]),
    );
  }
  if (field.repeated) {
    if (!Array.isArray(value)) throw mappingError(path, `expected an array, got ${describe(value)}`);
    return value.map((element, index) => elementFromJson(field, element, `${path}[${index}]`, depth));
  }
  return elementFromJson(field, value, path, depth);
}

function mapKeyFromJson(keyType: string, key: string, path: string): string {
  if (keyType === 'string') return key;
  return String(scalarFromJson(keyType, key, path));
}

function elementFromJson(field: Field, value: unknown, path: string, depth: number): unknown {
  if (value === null && !acceptsNull(field)) throw mappingError(path, 'null is not allowed here');
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return messageFromJson(resolved, value, path, depth + 1);
  if (resolved instanceof protobuf.Enum) return enumFromJson(resolved, value, path);
  return scalarFromJson(field.type, value, path);
}

function enumFromJson(type: Enum, value: unknown, path: string): number {
  if (value === null && type.fullName === '.google.protobuf.NullValue') return 0;
  if (typeof value === 'string' && Object.hasOwn(type.values, value)) return type.values[value] as number;
  // Open enums: a number the .proto does not name is still a valid int32 value.
  if (typeof value === 'number' && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31) return value;
  throw mappingError(path, `expected a value of enum ${type.fullName.slice(1)} (${Object.keys(type.values).join(', ')}), got ${describe(value)}`);
}

const INTEGER_RANGES: ReadonlyMap<string, readonly [bigint, bigint]> = new Map([
  ['int32', [-(2n ** 31n), 2n ** 31n - 1n]],
  ['sint32', [-(2n ** 31n), 2n ** 31n - 1n]],
  ['sfixed32', [-(2n ** 31n), 2n ** 31n - 1n]],
  ['uint32', [0n, 2n ** 32n - 1n]],
  ['fixed32', [0n, 2n ** 32n - 1n]],
  ['int64', [-(2n ** 63n), 2n ** 63n - 1n]],
  ['sint64', [-(2n ** 63n), 2n ** 63n - 1n]],
  ['sfixed64', [-(2n ** 63n), 2n ** 63n - 1n]],
  ['uint64', [0n, 2n ** 64n - 1n]],
  ['fixed64', [0n, 2n ** 64n - 1n]],
]);

const FLOAT_MAX = 3.4028234663852886e38;

function scalarFromJson(type: string, value: unknown, path: string): unknown {
  const range = INTEGER_RANGES.get(type);
  if (range !== undefined) {
    let integer: bigint | undefined;
    // A JSON number past 2^53 has already lost digits in JSON.parse; proto3 JSON writes those as strings.
    if (typeof value === 'number' && Number.isSafeInteger(value)) integer = BigInt(value);
    if (typeof value === 'string' && /^-?(0|[1-9][0-9]*)$/.test(value)) integer = BigInt(value);
    if (integer === undefined) throw mappingError(path, `expected an integer (${type}), got ${describe(value)}`);
    if (integer < range[0] || integer > range[1]) throw mappingError(path, `${integer} is out of range for ${type}`);
    // 64-bit values go to protobufjs as decimal strings, which it encodes without going through a double.
    return range[1] > 2n ** 32n ? integer.toString() : Number(integer);
  }
  switch (type) {
    case 'double':
    case 'float': {
      const number =
        typeof value === 'number'
          ? value
          : typeof value === 'string' && /^(NaN|-?Infinity|-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?)$/.test(value)
            ? Number(value)
            : undefined;
      if (number === undefined) throw mappingError(path, `expected a number (${type}), got ${describe(value)}`);
      if (type === 'float' && Number.isFinite(number) && Math.abs(number) > FLOAT_MAX) {
        throw mappingError(path, `${number} is out of range for float`);
      }
      return number;
    }
    case 'bool':
      if (typeof value !== 'boolean') throw mappingError(path, `expected true or false, got ${describe(value)}`);
      return value;
    case 'string':
      if (typeof value !== 'string') throw mappingError(path, `expected a string, got ${describe(value)}`);
      return value;
    case 'bytes':
      // Standard or URL-safe base64, padded or not, as proto3 JSON allows.
      if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(value) || value.replace(/=+$/, '').length % 4 === 1) {
        throw mappingError(path, `expected base64 bytes, got ${describe(value)}`);
      }
      return Buffer.from(value, 'base64');
    default:
      throw mappingError(path, `unsupported field type ${type}`);
  }
}

// --- message to JSON

function messageToJson(type: Type, message: Record<string, unknown>, depth: number): Json {
  if (depth > MAX_NESTING) throw mappingError(type.fullName.slice(1), `nested more than ${MAX_NESTING} messages deep`);
  const special = WELL_KNOWN_TYPES.get(type.fullName);
  if (special !== undefined) return special.toJson(message, type, depth);
  const entries: [string, Json][] = [];
  for (const field of type.fieldsArray) {
    const value = fieldToJson(field, message, depth);
    if (value !== undefined) entries.push([jsonName(field), value]);
  }
  return Object.fromEntries(entries);
}

/** The field's JSON value; its default when unset, or undefined for an unset field with presence. */
function fieldToJson(field: Field, message: Record<string, unknown>, depth: number): Json | undefined {
  const value = Object.hasOwn(message, field.name) ? message[field.name] : undefined;
  if (value === undefined || value === null) {
    if (hasPresence(field)) return undefined;
    if (field.map) return {};
    if (field.repeated) return [];
    return elementToJson(field, field.resolvedType instanceof protobuf.Enum ? 0 : defaultScalar(field.type), depth);
  }
  if (field.map) {
    const keyType = (field as unknown as MapField).keyType;
    const long = INTEGER_RANGES.get(keyType)?.[1] ?? 0n;
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([key, element]) => [
        // protobufjs keys 64-bit maps by an 8-character hash of the number's bits.
        long > 2n ** 32n ? protobuf.util.LongBits.fromHash(key).toLong(keyType.startsWith('u') || keyType === 'fixed64').toString() : key,
        elementToJson(field, element, depth),
      ]),
    );
  }
  if (field.repeated) return (value as unknown[]).map((element) => elementToJson(field, element, depth));
  return elementToJson(field, value, depth);
}

function defaultScalar(type: string): unknown {
  if (type === 'string') return '';
  if (type === 'bool') return false;
  if (type === 'bytes') return Buffer.alloc(0);
  return 0;
}

function elementToJson(field: Field, value: unknown, depth: number): Json {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return messageToJson(resolved, value as Record<string, unknown>, depth + 1);
  if (resolved instanceof protobuf.Enum) {
    if (resolved.fullName === '.google.protobuf.NullValue') return null;
    return resolved.valuesById[value as number] ?? (value as number);
  }
  return scalarToJson(field.type, value);
}

function scalarToJson(type: string, value: unknown): Json {
  if ((INTEGER_RANGES.get(type)?.[1] ?? 0n) > 2n ** 32n) return String(value); // a Long, or a number
  switch (type) {
    case 'double':
    case 'float': {
      const number = value as number;
      if (!Number.isFinite(number)) return String(number); // "NaN", "Infinity", "-Infinity"
      return type === 'float' ? shortestFloat32(number) : number;
    }
    case 'bytes':
      return Buffer.from(value as Uint8Array).toString('base64');
    default:
      return value as Json;
  }
}

/** A float field decodes to the double nearest its 32 bits; print the shortest decimal of the float. */
function shortestFloat32(value: number): number {
  for (let digits = 1; digits < 17; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}

// --- well-known types with their own JSON forms

interface WellKnownType {
  fromJson(json: unknown, path: string, type: Type, depth: number): Record<string, unknown>;
  toJson(message: Record<string, unknown>, type: Type, depth: number): Json;
}

/**
 * A well-known type's field by number: protobufjs's bundled copies name some fields in snake_case
 * (Any.type_url) and others in camelCase (Value.nullValue), so names cannot be relied on.
 */
function numbered(type: Type, id: number): Field {
  return type.fieldsById[id] as Field;
}

/** The message with field `id` set to `value`, keyed by whatever name the loaded type uses. */
function withField(type: Type, id: number, value: unknown): Record<string, unknown> {
  return Object.fromEntries([[numbered(type, id).name, value]]);
}

/** Timestamps from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z, as proto3 JSON allows. */
const TIMESTAMP_SECONDS: readonly [bigint, bigint] = [-62_135_596_800n, 253_402_300_799n];
const DURATION_MAX_SECONDS = 315_576_000_000n;
const TIMESTAMP_PATTERN = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|([+-])(\d{2}):(\d{2}))$/;
const DURATION_PATTERN = /^(-)?(\d{1,12})(?:\.(\d{1,9}))?s$/;

/** Nanoseconds as 0, 3, 6 or 9 fractional digits, as protobuf's own JSON printers write them. */
function fraction(nanos: number): string {
  if (nanos === 0) return '';
  const digits = String(nanos).padStart(9, '0');
  return `.${nanos % 1_000_000 === 0 ? digits.slice(0, 3) : nanos % 1000 === 0 ? digits.slice(0, 6) : digits}`;
}

/** Timestamp and Duration share their layout: 1 seconds (int64), 2 nanos (int32). */
function secondsAndNanos(message: Record<string, unknown>, type: Type): [bigint, number] {
  const seconds = message[numbered(type, 1).name];
  const nanos = message[numbered(type, 2).name];
  return [BigInt(String(seconds ?? 0)), Number(nanos ?? 0)];
}

function fromSecondsAndNanos(type: Type, seconds: bigint, nanos: number): Record<string, unknown> {
  return { ...withField(type, 1, seconds.toString()), ...withField(type, 2, nanos) };
}

const timestampJson: WellKnownType = {
  fromJson(json, path, type) {
    const match = typeof json === 'string' ? TIMESTAMP_PATTERN.exec(json) : null;
    if (match === null) throw mappingError(path, `expected an RFC 3339 timestamp such as "2024-01-02T03:04:05Z", got ${describe(json)}`);
    const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    const date = new Date(0);
    date.setUTCFullYear(year, month - 1, day);
    date.setUTCHours(hour, minute, second, 0);
    // Date rolls 30 February over into March; a round trip that changes a field means it was invalid.
    const exact =
      date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day &&
      date.getUTCHours() === hour && date.getUTCMinutes() === minute && date.getUTCSeconds() === second;
    const offsetHours = Number(match[9] ?? 0);
    const offsetMinutes = Number(match[10] ?? 0);
    if (!exact || offsetHours > 23 || offsetMinutes > 59) throw mappingError(path, `${JSON.stringify(json)} is not a valid date and time`);
    const offset = BigInt(offsetHours * 3600 + offsetMinutes * 60) * (match[8] === '-' ? -1n : 1n);
    const seconds = BigInt(date.getTime() / 1000) - offset;
    if (seconds < TIMESTAMP_SECONDS[0] || seconds > TIMESTAMP_SECONDS[1]) throw mappingError(path, 'timestamp out of range');
    return fromSecondsAndNanos(type, seconds, Number((match[7] ?? '').padEnd(9, '0')));
  },
  toJson(message, type) {
    const [seconds, nanos] = secondsAndNanos(message, type);
    if (seconds < TIMESTAMP_SECONDS[0] || seconds > TIMESTAMP_SECONDS[1] || nanos < 0 || nanos > 999_999_999) {
      throw mappingError('google.protobuf.Timestamp', `seconds ${seconds} and nanos ${nanos} are out of range`);
    }
    return `${new Date(Number(seconds) * 1000).toISOString().slice(0, 19)}${fraction(nanos)}Z`;
  },
};

const durationJson: WellKnownType = {
  fromJson(json, path, type) {
    const match = typeof json === 'string' ? DURATION_PATTERN.exec(json) : null;
    if (match === null) throw mappingError(path, `expected a duration such as "1.5s", got ${describe(json)}`);
    const negative = match[1] === '-';
    const seconds = BigInt(match[2] ?? '0');
    if (seconds > DURATION_MAX_SECONDS) throw mappingError(path, 'duration out of range');
    const nanos = Number((match[3] ?? '').padEnd(9, '0'));
    // Both parts carry the sign, as the Duration message requires.
    return fromSecondsAndNanos(type, negative ? -seconds : seconds, negative ? -nanos : nanos);
  },
  toJson(message, type) {
    const [seconds, nanos] = secondsAndNanos(message, type);
    const negative = seconds < 0n || nanos < 0;
    const magnitude = negative ? -seconds : seconds;
    if ((seconds < 0n && nanos > 0) || (seconds > 0n && nanos < 0) || Math.abs(nanos) > 999_999_999 || magnitude > DURATION_MAX_SECONDS) {
      throw mappingError('google.protobuf.Duration', `seconds ${seconds} and nanos ${nanos} are not a valid duration`);
    }
    return `${negative ? '-' : ''}${magnitude}${fraction(Math.abs(nanos))}s`;
  },
};

/** DoubleValue, StringValue and the rest, Struct (its map) and ListValue (its list): field 1 itself. */
const firstFieldJson: WellKnownType = {
  fromJson: (json, path, type, depth) => withField(type, 1, fieldFromJson(numbered(type, 1), json, path, depth)),
  // Never undefined: field 1 of these types has no presence, so an unset one prints its default.
  toJson: (message, type, depth) => fieldToJson(numbered(type, 1), message, depth) ?? null,
};

/** Value's kinds by field number: 1 null, 2 number, 3 string, 4 bool, 5 Struct, 6 ListValue. */
const valueJson: WellKnownType = {
  fromJson(json, path, type, depth) {
    if (json === null) return withField(type, 1, 0);
    if (typeof json === 'number') return withField(type, 2, json);
    if (typeof json === 'string') return withField(type, 3, json);
    if (typeof json === 'boolean') return withField(type, 4, json);
    const id = Array.isArray(json) ? 6 : 5;
    return withField(type, id, elementFromJson(numbered(type, id), json, path, depth));
  },
  toJson(message, type, depth) {
    const set = type.fieldsArray.find((field) => Object.hasOwn(message, field.name) && message[field.name] != null);
    if (set === undefined) throw mappingError('google.protobuf.Value', 'no kind is set');
    const kind = message[set.name];
    if (set.id === 2 && !Number.isFinite(kind)) throw mappingError('google.protobuf.Value', `${String(kind)} has no JSON form`);
    return elementToJson(set, kind, depth);
  },
};

const fieldMaskJson: WellKnownType = {
  fromJson(json, path, type) {
    if (typeof json !== 'string') throw mappingError(path, `expected a string of comma-separated paths, got ${describe(json)}`);
    const paths = json === '' ? [] : json.split(',').map((item) => item.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`));
    return withField(type, 1, paths);
  },
  toJson: (message, type) =>
    ((message[numbered(type, 1).name] as string[] | undefined) ?? [])
      .map((item) => item.replace(/_([a-z0-9])/g, (_match, next: string) => next.toUpperCase()))
      .join(','),
};

/** The message type an Any's type URL names, from the loaded protos. */
function anyTarget(anyType: Type, typeUrl: string, path: string): Type {
  const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
  const found = name === '' ? null : anyType.root.lookup(name);
  if (!(found instanceof protobuf.Type)) {
    throw mappingError(path, `google.protobuf.Any holds ${JSON.stringify(typeUrl)}, a type not in the loaded protos (add its --proto)`);
  }
  return found;
}

/** Any: 1 type_url, 2 value; in JSON the packed message's own fields beside "@type". */
const anyJson: WellKnownType = {
  fromJson(json, path, type, depth) {
    if (!isPlainObject(json)) throw mappingError(path, `expected an object with "@type", got ${describe(json)}`);
    if (Object.keys(json).length === 0) return {};
    const typeUrl = json['@type'];
    if (typeof typeUrl !== 'string') throw mappingError(path, 'google.protobuf.Any needs an "@type" string');
    const target = anyTarget(type, typeUrl, path);
    const { '@type': _typeUrl, ...fields } = json;
    // A well-known type inside an Any keeps its own JSON form under "value".
    const inner = WELL_KNOWN_TYPES.has(target.fullName) ? fields.value : fields;
    const packed = target.encode(messageFromJson(target, inner, path, depth + 1)).finish();
    return { ...withField(type, 1, typeUrl), ...withField(type, 2, packed) };
  },
  toJson(message, type, depth) {
    const typeUrl = message[numbered(type, 1).name];
    if (typeof typeUrl !== 'string' || typeUrl === '') return {};
    const target = anyTarget(type, typeUrl, 'google.protobuf.Any');
    const packed = (message[numbered(type, 2).name] as Uint8Array | undefined) ?? new Uint8Array();
    let decoded: Record<string, unknown>;
    try {
      decoded = target.decode(packed) as unknown as Record<string, unknown>;
    } catch (error) {
      throw mappingError('google.protobuf.Any', `its ${typeUrl} value does not decode: ${(error as Error).message}`);
    }
    const inner = messageToJson(target, decoded, depth + 1);
    const fields: Record<string, Json> = WELL_KNOWN_TYPES.has(target.fullName) ? { value: inner } : (inner as Record<string, Json>);
    return { '@type': typeUrl, ...fields };
  },
};

const WELL_KNOWN_TYPES: ReadonlyMap<string, WellKnownType> = new Map([
  ['.google.protobuf.Timestamp', timestampJson],
  ['.google.protobuf.Duration', durationJson],
  ['.google.protobuf.Struct', firstFieldJson],
  ['.google.protobuf.ListValue', firstFieldJson],
  ['.google.protobuf.Value', valueJson],
  ['.google.protobuf.FieldMask', fieldMaskJson],
  ['.google.protobuf.Any', anyJson],
  ...['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map(
    (name) => [`.google.protobuf.${name}Value`, firstFieldJson] as const,
  ),
]);

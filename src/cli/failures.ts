/** The one failure line a `gatehouse` command prints, and its exit code, built from the error's code and details. */
import { isGatehouseError, type GatehouseError, type GatehouseErrorCode } from '../errors.js';
import { Interrupted } from './interruption.js';
import { escapeControls } from './terminal.js';

/** The diagnosis (a rejected cookie, a plugin that needs TLS, its error line) is the library's; this only words the step. */
export interface FailureContext {
  /** The step under way when it names every failure, whatever the code (e.g. "manifest" for --manifest). */
  stage?: string;
}

/**
 * The word that says which step failed. Codes whose message already says it have none: the handshake
 * parser's messages start "plugin handshake: ".
 */
const FAILURE_STEPS: Partial<Record<GatehouseErrorCode, string>> = {
  SPAWN_FAILED: 'launch',
  START_TIMEOUT: 'handshake',
  COOKIE_MISMATCH: 'cookie',
  CORE_VERSION_MISMATCH: 'handshake',
  NETWORK_UNSUPPORTED: 'handshake',
  ADDRESS_NOT_LOOPBACK: 'handshake',
  NETRPC_UNSUPPORTED: 'handshake',
  PROTOCOL_VERSION_MISMATCH: 'version',
  PLAINTEXT_REFUSED: 'TLS',
  TLS_FAILED: 'TLS',
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
  DIGEST_MISMATCH: '; the plugin was not run',
  FILE_NOT_REGULAR: '; --sha256 needs COMMAND to be a regular file (for a link, give the path it points to: readlink -f)',
};

export interface Failure {
  /** Without the "gatehouse <command>: " prefix. */
  line: string;
  exitCode: number;
}

/**
 * The line and exit code for any failure: USAGE exits 2, an interruption 128+N, anything else 1.
 * `describe` words a GatehouseError (default: its code, then its message).
 */
export function describeError(error: unknown, describe: (error: GatehouseError) => string = codeAndMessage): Failure {
  if (error instanceof Interrupted) return { line: error.message, exitCode: error.exitCode };
  // Anything else is unexpected: its message only, never a stack trace.
  if (!isGatehouseError(error)) return { line: firstLine(error instanceof Error ? error.message : String(error)), exitCode: 1 };
  if (error.code === 'USAGE') return { line: firstLine(error.message), exitCode: 2 };
  return { line: describe(error), exitCode: 1 };
}

/** Writes the failure line of `gatehouse <command>` to stderr and returns its exit code. */
export function reportFailure(command: string, failure: Failure): number {
  // Escaped: the line may quote what a plugin or a file name says.
  process.stderr.write(`${escapeControls(`gatehouse ${command}: ${failure.line}`)}\n`);
  return failure.exitCode;
}

/** One line (without the "gatehouse call: " prefix) and the exit code for a failure of `gatehouse call`. */
export function describeFailure(error: unknown, context: FailureContext): Failure {
  return describeError(error, (error) => describeCallError(error, context));
}

/** "CODE: message", the form for failures whose code is the most useful thing to print. */
export function codeAndMessage(error: GatehouseError): string {
  return `${error.code}: ${firstLine(error.message)}`;
}

function describeCallError(error: GatehouseError, context: FailureContext): string {
  if (context.stage !== undefined) return `${context.stage}: ${codeAndMessage(error)}`;
  // The first line of the library's message says what the plugin said; the rest (its last stderr
  // lines) is already on stderr as log lines.
  const step = FAILURE_STEPS[error.code];
  return `${step === undefined ? '' : `${step}: `}${firstLine(error.message)}${FAILURE_HINTS[error.code] ?? ''}`;
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0] ?? '';
}

/**
 * Why a plugin died before its handshake, in the words of the fix: a rejected magic cookie and a plugin
 * that will not serve without TLS are told apart from any other early exit, for every caller of launch()
 * (the CLI only prints what this says).
 */
import { GatehouseError, isGatehouseError } from '../errors.js';
import type { PluginStderr } from './plugin-output.js';
import { describeExit } from './plugin-process.js';
import type { ProcessLimits } from './process-limits.js';

export interface StartContext {
  cookieKey: string;
  insecurePlaintext: boolean;
  limits?: ProcessLimits | undefined;
}

/** What a runtime prints when it gets no memory or no descriptor as it starts (V8, libuv, glibc, Go). */
const OUT_OF_RESOURCES = /out of memory|\bOOM\b|reserve virtual memory|bad_alloc|cannot allocate memory|ENOMEM|EMFILE|too many open files|uv_loop_init/i;

/** Words a plugin uses when it refuses to serve without the host's certificate (ours and go-plugin's). */
const NEEDS_TLS = /PLUGIN_CLIENT_CERT|PLAINTEXT_REFUSED|\bTLS\b|certificate/i;

/** The error for a failed start, made specific when the plugin's exit says what went wrong; others pass through. */
export function explainStartFailure(error: unknown, stderr: PluginStderr, context: StartContext): unknown {
  if (!isGatehouseError(error, 'PLUGIN_EXITED')) return error;
  const status = error.details.exitStatus;
  const exit = status === undefined ? 'unknown exit status' : describeExit(status);
  const details = { ...error.details };
  if (stderr.cookieRejected) {
    // The value is never quoted: it is a shared secret of sorts, and error messages end up in logs.
    return new GatehouseError(
      'COOKIE_MISMATCH',
      `the plugin rejected the magic cookie ${context.cookieKey} (it printed go-plugin's "This binary is a plugin" ` +
        `message, ${exit}); check the cookie (--cookie for gatehouse call) against the plugin's HandshakeConfig ` +
        `MagicCookieKey and MagicCookieValue`,
      { cause: error, details },
    );
  }
  const said = stderr.errorLine();
  if (context.insecurePlaintext && said !== undefined && NEEDS_TLS.test(said)) {
    return new GatehouseError(
      'PLAINTEXT_REFUSED',
      `the plugin exited before its handshake (${exit}) when launched with insecurePlaintext: it requires mutual ` +
        `TLS, so drop insecurePlaintext (--insecure for gatehouse call); the plugin said: ${JSON.stringify(said)}`,
      { cause: error, details },
    );
  }
  const { memoryBytes, openFiles } = context.limits ?? {};
  if ((memoryBytes !== undefined || openFiles !== undefined) && stderr.lastLines().some((line) => OUT_OF_RESOURCES.test(line))) {
    // The plugin dies in its runtime's words ("Fatal process OOM", "uv_loop_init"), which never name the limit the host set.
    const set = [memoryBytes !== undefined ? `memoryBytes ${memoryBytes}` : '', openFiles !== undefined ? `openFiles ${openFiles}` : ''].filter(Boolean).join(', ');
    return new GatehouseError(
      'PLUGIN_EXITED',
      `plugin ran out of memory or file descriptors before its handshake (${exit}) under limits ${set}: raise them ` +
        `(Node.js reserves about 1 GiB of address space and opens a few dozen descriptors before a plugin's code runs)` +
        stderr.describe(),
      { cause: error, details },
    );
  }
  return error;
}

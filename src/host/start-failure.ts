/**
 * Why a plugin died before its handshake, in the words of the fix: a rejected magic cookie and a plugin
 * that will not serve without TLS are told apart from any other early exit, for every caller of launch()
 * (the CLI only prints what this says).
 */
import { GatehouseError, isGatehouseError } from '../errors.js';
import type { PluginStderr } from './plugin-output.js';
import { describeExit } from './plugin-process.js';

export interface StartContext {
  cookieKey: string;
  insecurePlaintext: boolean;
}

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
  return error;
}

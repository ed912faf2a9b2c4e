import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../logger.js';
import type { PluginService } from '../transport/service.js';

/**
 * The implementation with each handler wrapped so that a throw is logged, naming the method: grpc-js
 * answers a throwing handler with UNKNOWN "Unknown error" and logs nothing, which leaves the plugin's
 * author (and the host's logger) nothing to go on. The throw still reaches grpc-js, so the caller's
 * answer is what it was (grpc-js does not send the message, and neither do we).
 */
export function loggingThrows(service: PluginService, logger: Logger): grpc.UntypedServiceImplementation {
  const implementation = service.implementation as Record<string, unknown>;
  const wrapped: grpc.UntypedServiceImplementation = {};
  for (const [key, method] of Object.entries(service.definition as grpc.ServiceDefinition)) {
    // grpc-js finds a handler under the method's key or proto-loader's originalName; read it as grpc-js
    // does (a class instance's methods live on its prototype) and call it on its own object.
    const handler = implementation[key] ?? (method.originalName === undefined ? undefined : implementation[method.originalName]);
    if (typeof handler !== 'function') continue; // UNIMPLEMENTED, as before; implementationProblems() said so
    wrapped[key] = ((call: unknown, callback: unknown): unknown => {
      try {
        return (handler as (call: unknown, callback: unknown) => unknown).call(implementation, call, callback);
      } catch (error) {
        logger.error(
          { method: method.path, error, ...(error instanceof Error ? { stack: error.stack } : {}) },
          `${method.path} threw: ${describe(error)}; the caller got UNKNOWN "Unknown error". Answer a failure with a ` +
            'gRPC status instead: callback({ code, details }), or call.emit(\'error\', { code, details }) in a server or bidi stream',
        );
        throw error;
      }
    }) as grpc.UntypedHandleCall;
  }
  return wrapped;
}

/** What was thrown, as text; a value whose String() throws (an object without a prototype) still gets a name. */
function describe(thrown: unknown): string {
  try {
    return String(thrown);
  } catch {
    return Object.prototype.toString.call(thrown);
  }
}

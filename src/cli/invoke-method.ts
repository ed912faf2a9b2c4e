/** Makes one planned call against a running plugin and prints each response as one JSON line. */
import * as grpc from '@grpc/grpc-js';
import { GatehouseError, isGatehouseError } from '../errors.js';
import type { Plugin } from '../host/plugin.js';
import type { PlannedCall } from './call-plan.js';
import { fullMethodName, methodDefinition, responseToJson } from './proto-methods.js';
import { escapeControls, writeStdoutLine } from './terminal.js';

/**
 * Makes the call; `offeredVersions` are the protocol versions the plugin was offered, for the hint on a
 * method it does not serve (a plugin serves the services of the version it chose, go-plugin's VersionedPlugins).
 */
export async function invokeMethod(plugin: Plugin, call: PlannedCall, timeoutMs: number, offeredVersions: readonly number[]): Promise<void> {
  const { method } = call;
  const definition = methodDefinition(method);
  // Escaped: string fields hold whatever the plugin sent, and must not drive the terminal.
  const print = async (response: unknown): Promise<void> =>
    writeStdoutLine(escapeControls(JSON.stringify(responseToJson(method, response, call.label))));
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
        // Worded and detailed as the host's unary calls fail, so both read and branch alike.
        reject(
          new GatehouseError('CALL_FAILED', `${fullMethodName(method)} failed: ${status}: ${error.details}`, {
            cause: error,
            details: { grpcCode: error.code },
          }),
        );
      });
      // 'end' rather than 'status': grpc-js reports the status as soon as it arrives, before the
      // messages still buffered behind a pause have been printed. A failed status comes as 'error' first.
      stream.on('end', () => resolvePromise());
    });
  } catch (error) {
    if (!isGatehouseError(error)) throw error;
    const hint =
      error.code === 'CALL_FAILED' && error.details.grpcCode === grpc.status.UNIMPLEMENTED
        ? `; this call offered protocol versions ${offeredVersions.join(',')}: a method of another version needs --protocol-version ` +
          '(the plugin picks the highest both speak)'
        : '';
    if (call.label === '' && hint === '') throw error;
    throw new GatehouseError(error.code, `${call.label}${error.message}${hint}`, { cause: error, details: error.details });
  }
}

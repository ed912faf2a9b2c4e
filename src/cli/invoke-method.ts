/** Makes one planned call against a running plugin and prints each response as one JSON line. */
import { PassThrough, type Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { GatehouseError, isGatehouseError } from '../errors.js';
import type { Plugin } from '../host/plugin.js';
import type { PlannedCall } from './call-plan.js';
import { fullMethodName, methodDefinition, responseToJson, type Message } from './proto-methods.js';
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
    if (!definition.responseStream && !definition.requestStream) {
      const client = plugin.client({ [method.name]: definition });
      const invoke = client[method.name] as (request: unknown, options: { timeoutMs: number }) => Promise<unknown>;
      await print(await invoke(call.requests[0], { timeoutMs }));
      return;
    }
    const stream = openStream(plugin.grpcClient({ [method.name]: definition }), definition, call.requests, Date.now() + timeoutMs);
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

/** A call's responses, read as one stream whatever the method's kind; `cancel()` tells the plugin to stop. */
type Responses = Readable & { cancel(): void };

/** The call's responses as a stream, its requests (one, or each of a request stream) sent and the sending side closed. */
function openStream(client: grpc.Client, definition: grpc.MethodDefinition<Message, unknown>, requests: readonly Message[], deadline: number): Responses {
  const { path, requestSerialize, responseDeserialize } = definition;
  if (!definition.requestStream) return client.makeServerStreamRequest(path, requestSerialize, responseDeserialize, requests[0]!, { deadline });
  let responses: Responses;
  let call: grpc.ClientWritableStream<Message>;
  if (definition.responseStream) {
    const bidi = client.makeBidiStreamRequest(path, requestSerialize, responseDeserialize, { deadline });
    responses = bidi;
    call = bidi;
  } else {
    // A client-streaming method answers once: its response (or its failure) is read as a stream of one, as a bidi call's.
    const one = new PassThrough({ objectMode: true });
    call = client.makeClientStreamRequest(path, requestSerialize, responseDeserialize, { deadline }, (error, response) =>
      error ? one.destroy(error) : one.end(response),
    );
    responses = Object.assign(one, { cancel: () => call.cancel() });
  }
  // All written, then the end: they are already in memory, bounded by --data's and the script's limits.
  for (const request of requests) call.write(request);
  call.end();
  return responses;
}

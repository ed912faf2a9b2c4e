/**
 * Turns --method/--data or a --script into the calls to make. Every call is read, resolved and converted
 * before the plugin starts: a bad line runs nothing.
 */
import type { Method, Root } from 'protobufjs';
import { GatehouseError } from '../errors.js';
import { isPlainObject, parseJson } from './json.js';
import { findMethod, requestFromJson, type Message } from './proto-methods.js';
import { MAX_SCRIPT_LINE_BYTES, readScript, scriptName } from './script.js';

/** Where the calls come from: one method with its request, or a script of them. */
export type CallSource = { method: string; data: string | undefined } | { script: string };

export interface PlannedCall {
  /** "script line N: " or "" for --method, put in front of a failure. */
  label: string;
  method: Method;
  /** One request, or for a client- or bidirectional-streaming method the messages it sends, in order. */
  requests: Message[];
}

/**
 * The requests of one call from its JSON: an object for a method that takes one message, an array of them for a
 * method that takes a stream (sent in order, then the stream is closed).
 */
function requestsFromJson(method: Method, json: unknown, where: string): Message[] {
  if (method.requestStream !== true) return [requestFromJson(method, json, where)];
  if (!Array.isArray(json)) {
    throw new GatehouseError('USAGE', `${where}: ${method.name} takes a stream of requests: give them as a JSON array, e.g. [{...}, {...}] ([] sends none)`);
  }
  // Attack (on the CLI's memory): 3 bytes of JSON ("{},") are a parsed message and a queued write each; one 4 MiB
  // script line of them (1.4 million requests) grew gatehouse call to 900 MB before a byte was sent.
  if (json.length > MAX_STREAM_REQUESTS) {
    throw new GatehouseError('USAGE', `${where}: ${json.length} requests: a call sends at most ${MAX_STREAM_REQUESTS}; split them over several calls (script lines)`);
  }
  return json.map((item, index) => requestFromJson(method, item, `${where}[${index}]`));
}

/** The most requests one call of a request-streaming method sends. */
const MAX_STREAM_REQUESTS = 10_000;
/** The most requests a script's calls send in all: ten full request streams. */
const MAX_SCRIPT_REQUESTS = 100_000;

export async function planCalls(root: Root, source: CallSource, protoFiles: readonly string[]): Promise<PlannedCall[]> {
  if ('method' in source) {
    const method = findMethod(root, source.method, '--method', protoFiles);
    // No --data: an empty request, or for a request stream none at all.
    const json = source.data === undefined ? (method.requestStream === true ? [] : {}) : parseJson(source.data, '--data');
    return [{ label: '', method, requests: requestsFromJson(method, json, '--data') }];
  }
  const lines = await readScript(source.script);
  const calls: PlannedCall[] = [];
  let total = 0;
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
    const extra = Object.keys(entry).find((key) => key !== 'method' && key !== 'request' && key !== 'requests');
    if (extra !== undefined) throw new GatehouseError('USAGE', `${where}: unknown key ${JSON.stringify(extra)}`);
    const method = findMethod(root, entry.method, where, protoFiles);
    // "requests" for a method that takes a stream, "request" for one that takes one message: the other is a mistake.
    const [given, other] = method.requestStream === true ? (['requests', 'request'] as const) : (['request', 'requests'] as const);
    if (other in entry) throw new GatehouseError('USAGE', `${where}: ${entry.method} takes ${given === 'requests' ? 'a stream of requests: give "requests": [...]' : 'one request: give "request": {...}'}, not "${other}"`);
    const requests = requestsFromJson(method, entry[given] ?? (given === 'requests' ? [] : {}), where);
    total += requests.length;
    // Attack (on the CLI's memory): every line is parsed before the first call, so their requests are held together.
    if (total > MAX_SCRIPT_REQUESTS) {
      throw new GatehouseError('USAGE', `${where}: the script's calls send more than ${MAX_SCRIPT_REQUESTS} requests in all; split it into several scripts`);
    }
    calls.push({ label: `${where}: `, method, requests });
  }
  if (calls.length === 0) throw new GatehouseError('USAGE', `${scriptName(source.script)} has no calls`);
  return calls;
}

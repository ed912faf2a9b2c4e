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
export type CallSource = { method: string; data: string } | { script: string };

export interface PlannedCall {
  /** "script line N: " or "" for --method, put in front of a failure. */
  label: string;
  method: Method;
  request: Message;
}

export async function planCalls(root: Root, source: CallSource, protoFiles: readonly string[]): Promise<PlannedCall[]> {
  if ('method' in source) {
    const method = findMethod(root, source.method, '--method', protoFiles);
    const request = requestFromJson(method, parseJson(source.data, '--data'), '--data');
    return [{ label: '', method, request }];
  }
  const lines = await readScript(source.script);
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
    const method = findMethod(root, entry.method, where, protoFiles);
    calls.push({ label: `${where}: `, method, request: requestFromJson(method, entry.request ?? {}, where) });
  }
  if (calls.length === 0) throw new GatehouseError('USAGE', `${scriptName(source.script)} has no calls`);
  return calls;
}

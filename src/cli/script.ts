/** Reading a --script: from a file or standard input, refused whole past its bounds. */
import { createReadStream } from 'node:fs';
import { GatehouseError, isGatehouseError } from '../errors.js';

/** Bounds on a --script, so a runaway generator or a wrong file cannot make us hold it all in memory. */
export const MAX_SCRIPT_LINE_BYTES = 4 * 1024 * 1024;
const MAX_SCRIPT_LINES = 10_000;
const MAX_SCRIPT_BYTES = 64 * 1024 * 1024;

/** How failures name the script: its path, or standard input for "-". */
export function scriptName(script: string): string {
  return script === '-' ? 'script (standard input)' : `script ${script}`;
}

/** The script's lines; refuses it whole past the size or line-count bounds, or when not UTF-8. */
export async function readScript(script: string): Promise<string[]> {
  const where = scriptName(script);
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

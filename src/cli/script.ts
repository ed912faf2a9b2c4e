/** Reading a --script: from a file or standard input, refused whole past its bounds. */
import { close, constants, createReadStream, fstat, open } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
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
  const input = script === '-' ? process.stdin : await openScript(script);
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

/**
 * The script file as a stream. A FIFO (named, or `<(generator)`) is opened without blocking and read as a
 * pipe, waiting for its writer on the event loop: a blocking open waits in a thread-pool thread, and Node
 * cannot exit until that thread returns, so Ctrl-C printed "interrupted" and then hung until a writer came.
 */
async function openScript(script: string): Promise<Readable> {
  let fd: number;
  try {
    fd = await promisify(open)(script, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw new GatehouseError('USAGE', `${scriptName(script)}: cannot be read: ${(error as Error).message}`, { cause: error });
  }
  const stats = await promisify(fstat)(fd).catch(async (error: unknown) => {
    await promisify(close)(fd);
    throw error;
  });
  if (stats.isFIFO() || stats.isSocket()) return new Socket({ fd, readable: true, writable: false });
  if (stats.isFile()) return createReadStream('', { fd });
  // A terminal or other device: read as before, blocking (O_NONBLOCK would make its reads fail with EAGAIN).
  await promisify(close)(fd);
  return createReadStream(script);
}

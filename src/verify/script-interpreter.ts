/**
 * The `#!` line of a plugin run directly: the kernel then runs the interpreter it names, so that file
 * (and every directory above it) must be as safe as the plugin itself.
 */
import { isAbsolute } from 'node:path';
import { checkFileSafety, type SafeFile } from '../discover/file-safety.js';
import { GatehouseError } from '../errors.js';
import { openRegularFile } from './untrusted-file.js';

/** Linux reads this much of a file to find its `#!` line (BINPRM_BUF_SIZE). */
const SHEBANG_BYTES = 256;

/**
 * Reads `file`'s `#!` line, if it has one, and applies the file-safety checks to the interpreter it
 * names (as written: links followed and checked). Undefined for a file without `#!` (a binary).
 */
export async function checkScriptInterpreter(file: string, options: { uid?: number | undefined } = {}): Promise<SafeFile | undefined> {
  const interpreter = parseShebang(file, await readHead(file));
  if (interpreter === undefined) return undefined;
  // A signed script whose `#!` names a file another user can write runs that user's code.
  return checkFileSafety(interpreter, '/', { executable: true, ...(options.uid === undefined ? {} : { uid: options.uid }) });
}

/** The interpreter path of a `#!` line, as the kernel splits it; undefined without `#!`. */
export function parseShebang(file: string, head: Buffer): string | undefined {
  if (head.length < 2 || head[0] !== 0x23 || head[1] !== 0x21) return undefined;
  const end = head.indexOf(0x0a);
  // The kernel refuses a `#!` line it cannot see the end of; so do we, rather than guess the path.
  if (end === -1 && head.length >= SHEBANG_BYTES) throw invalid(file, `the #! line is longer than ${SHEBANG_BYTES} bytes`);
  const line = head.subarray(2, end === -1 ? head.length : end).toString('latin1');
  const interpreter = line.replace(/^[ \t]+/, '').split(/[ \t]/)[0] ?? '';
  if (interpreter === '') throw invalid(file, 'the #! line names no interpreter');
  // A relative interpreter is looked up from whatever directory the host happens to be in.
  if (!isAbsolute(interpreter)) throw invalid(file, `the #! interpreter ${interpreter} is not an absolute path`);
  return interpreter;
}

async function readHead(file: string): Promise<Buffer> {
  const opened = await openRegularFile(file);
  try {
    const head = Buffer.alloc(SHEBANG_BYTES);
    const { bytesRead } = await opened.handle.read(head, 0, SHEBANG_BYTES, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await opened.handle.close();
  }
}

function invalid(file: string, what: string): GatehouseError {
  return new GatehouseError('SHEBANG_INVALID', `${file}: ${what}; name an absolute interpreter, or set the manifest entry's interpreter`);
}

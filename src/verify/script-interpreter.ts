/**
 * The `#!` line of a file the kernel runs (a plugin run directly, or a plugin's interpreter): the kernel
 * then runs the interpreter it names, and that one's own, so each of those files (and every directory
 * above it) must be as safe as the plugin itself.
 */
import { realpath } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { checkFileSafety, type SafeFile } from '../discover/file-safety.js';
import { onFile } from '../discover/fs-error.js';
import { GatehouseError } from '../errors.js';
import { openRegularFile } from '../discover/untrusted-file.js';

/** Linux reads this much of a file to find its `#!` line (BINPRM_BUF_SIZE). */
const SHEBANG_BYTES = 256;

/** Interpreters followed from one file; Linux itself stops after a few levels (BINPRM_MAX_RECURSION). */
const MAX_INTERPRETER_DEPTH = 4;

/**
 * Reads the `#!` line of `file` (which the kernel is about to run), if it has one, and applies the
 * file-safety checks to the interpreter it names (as written: links followed and checked), then to that
 * interpreter's own `#!` interpreter, and so on down the chain the kernel follows. Deeper than
 * MAX_INTERPRETER_DEPTH is SHEBANG_INVALID.
 */
export async function checkScriptInterpreter(file: string, options: { uid?: number | undefined } = {}): Promise<void> {
  // A system interpreter is often a link (/bin/sh to dash): its head is read where the link leads.
  let current = await onFile(file, realpath(file));
  for (let depth = 0; ; depth += 1) {
    const interpreter = parseShebang(current, await readHead(current));
    if (interpreter === undefined) return;
    if (depth === MAX_INTERPRETER_DEPTH) throw invalid(file, `its #! interpreters lead on more than ${MAX_INTERPRETER_DEPTH} levels deep`);
    // A signed script whose `#!` names a file another user can write runs that user's code; so does one
    // whose interpreter is a script naming such a file (the kernel follows the chain, not just its first link).
    const checked: SafeFile = await checkFileSafety(interpreter, '/', { executable: true, ...(options.uid === undefined ? {} : { uid: options.uid }) });
    current = checked.realPath;
  }
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

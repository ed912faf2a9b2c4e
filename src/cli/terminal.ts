/** What `gatehouse call` writes to the terminal: text a plugin influenced is made inert first. */

/**
 * Escapes what a terminal would act on instead of showing: C0 and C1 controls (ANSI escapes, line
 * breaks that forge extra lines), DEL and bidirectional overrides. Applied to JSON text too, where it
 * only ever touches string contents and yields valid JSON escapes.
 */
export function escapeControls(text: string): string {
  return text.replace(/[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu, (char) =>
    char === '\t' ? char : `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Resolves once the line is handed to the OS, so that exiting afterwards cannot lose it. */
export function writeStdoutLine(line: string): Promise<void> {
  return new Promise((resolvePromise, reject) =>
    process.stdout.write(`${line}\n`, (error) => (error ? reject(new Error(`cannot write to stdout: ${error.message}`)) : resolvePromise())),
  );
}

/** Option parsing every `gatehouse` subcommand shares: strict, and a USAGE error for anything wrong. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { GatehouseError } from '../errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** What {@link parseCommandLine} returns: parseArgs' values, positionals and tokens for these options. */
export type CommandLine<T extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: T; strict: true; allowPositionals: true; tokens: true }>>;

/** A USAGE error (exit 2) that points at the command's help. */
export function usageError(command: string, message: string): GatehouseError {
  return new GatehouseError('USAGE', `${message} (see gatehouse ${command} --help)`);
}

/** parseArgs in strict mode, refusing a single-value option given twice. */
export function parseCommandLine<T extends Options>(command: string, argv: readonly string[], options: T): CommandLine<T> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true, tokens: true });
  } catch (error) {
    throw usageError(command, (error as Error).message);
  }
  // A repeated single-value option would silently keep only its last value: say so instead.
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    if (options[token.name]?.multiple !== true && seen.has(token.name)) throw usageError(command, `--${token.name} is given more than once`);
    seen.add(token.name);
  }
  return parsed;
}

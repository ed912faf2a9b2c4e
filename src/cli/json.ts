/** JSON as `gatehouse call` reads it from the command line and scripts. */
import { GatehouseError } from '../errors.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses text the user gave; `where` names it in the usage error. */
export function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new GatehouseError('USAGE', `${where}: not valid JSON: ${(error as Error).message}`);
  }
}

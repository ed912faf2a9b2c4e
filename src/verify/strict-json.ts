import { GatehouseError, type GatehouseErrorCode } from '../errors.js';

export interface StrictJsonOptions {
  /**
   * Every number must be written as an integer token (`0` or `-?[1-9][0-9]*`): for documents whose numbers
   * are all integers, where `1.0`, `1e0` or `9007199254740991.4` would be other spellings of one value.
   */
  integersOnly?: boolean;
}

/**
 * JSON.parse, plus what it lets through silently: an object with the same key twice (JSON.parse keeps the
 * last value, another parser might keep the first), and strings with an unpaired surrogate (`"\ud800"`,
 * which UTF-8 cannot hold: encoders turn each into U+FFFD, so several spellings name one file). With
 * `integersOnly`, a number with a fraction or an exponent too. Refused with `code`, naming where.
 */
export function parseStrictJson(text: string, code: GatehouseErrorCode, what: string, options: StrictJsonOptions = {}): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new GatehouseError(code, `${what}: not JSON (${error instanceof Error ? error.message : String(error)})`, { cause: error });
  }
  const problem = findProblem(text, options);
  if (problem !== undefined) throw new GatehouseError(code, `${what}: ${problem}`);
  return value;
}

/** True when `value` holds a surrogate that is not half of a pair (the text is not well-formed Unicode). */
export function hasLoneSurrogate(value: string): boolean {
  return LONE_SURROGATE.test(value);
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const INTEGER_TOKEN = /^(?:0|-?[1-9][0-9]*)$/;
const NUMBER_CHARACTER = /[-+.eE0-9]/;

/** One open container: the keys seen so far and the current one for an object, the index for an array. */
type Open = { keys: Set<string>; key: string | undefined } | { index: number };

/** The first thing JSON.parse accepted in `text` (valid JSON) that a strict reader refuses, or undefined. */
function findProblem(text: string, options: StrictJsonOptions): string | undefined {
  const open: Open[] = [];
  let keyNext = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? '';
    if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      // Without a backslash the characters between the quotes are the string itself: no parse needed.
      const raw = text.slice(i + 1, end);
      const string = raw.includes('\\') ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
      const top = open.at(-1);
      if (keyNext && top && 'keys' in top) {
        // Two readers that disagree on which duplicate wins would see two different documents under one signature.
        if (top.keys.has(string)) return `key ${JSON.stringify(string)} appears twice in one object`;
        top.keys.add(string);
        top.key = string;
        // JSON.stringify writes a lone surrogate as an escape, so the message shows it.
        if (hasLoneSurrogate(string)) return `key ${quoted(string)} contains an unpaired surrogate`;
      } else if (hasLoneSurrogate(string)) {
        return `${where(open)} contains an unpaired surrogate (not Unicode text: several spellings would become one)`;
      }
      keyNext = false;
      i = end;
    } else if (c === '{') {
      open.push({ keys: new Set(), key: undefined });
      keyNext = true;
    } else if (c === '[') {
      open.push({ index: 0 });
    } else if (c === '}' || c === ']') {
      open.pop();
    } else if (c === ',') {
      const top = open.at(-1);
      if (top && 'index' in top) top.index += 1;
      keyNext = top !== undefined && 'keys' in top;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      let end = i + 1;
      while (end < text.length && NUMBER_CHARACTER.test(text[end] ?? '')) end += 1;
      const token = text.slice(i, end);
      // Another spelling of an integer would let one signed value be read differently by another reader.
      if (options.integersOnly && !INTEGER_TOKEN.test(token)) return `${where(open)} is ${token}, not an integer token (write it without a fraction or exponent)`;
      i = end - 1;
    }
  }
  return undefined;
}

/** The place of the current value, as `plugins[0].path`. */
function where(open: readonly Open[]): string {
  let path = '';
  for (const entry of open) {
    if ('index' in entry) path += `[${entry.index}]`;
    else if (entry.key !== undefined) path += SIMPLE_KEY.test(entry.key) ? `${path === '' ? '' : '.'}${entry.key}` : `[${quoted(entry.key)}]`;
  }
  return path === '' ? 'the top-level value' : path;
}

const SIMPLE_KEY = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/** A key as a JSON string of printable ASCII: an outside key must not put controls or bidi characters in a message. */
function quoted(key: string): string {
  return JSON.stringify(key).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

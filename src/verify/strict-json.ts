import { GatehouseError, type GatehouseErrorCode } from '../errors.js';

/**
 * JSON.parse, plus the one thing it lets through silently: an object with the same key twice, where
 * JSON.parse keeps the last value and another parser might keep the first. Refused with `code`.
 */
export function parseStrictJson(text: string, code: GatehouseErrorCode, what: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new GatehouseError(code, `${what}: not JSON (${error instanceof Error ? error.message : String(error)})`, { cause: error });
  }
  const duplicate = duplicateKey(text);
  // Two readers that disagree on which duplicate wins would see two different documents under one signature.
  if (duplicate !== undefined) throw new GatehouseError(code, `${what}: key ${JSON.stringify(duplicate)} appears twice in one object`);
  return value;
}

/** The first key that appears twice in one object of `text`, which must be valid JSON. */
function duplicateKey(text: string): string | undefined {
  // One entry per open container: the keys seen so far for an object, null for an array.
  const open: Array<Set<string> | null> = [];
  let keyNext = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      const keys = open.at(-1);
      if (keyNext && keys) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (keys.has(key)) return key;
        keys.add(key);
      }
      keyNext = false;
      i = end;
    } else if (c === '{') {
      open.push(new Set());
      keyNext = true;
    } else if (c === '[') {
      open.push(null);
    } else if (c === '}' || c === ']') {
      open.pop();
    } else if (c === ',') {
      keyNext = Boolean(open.at(-1));
    }
  }
  return undefined;
}

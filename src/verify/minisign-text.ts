import { GatehouseError, type GatehouseErrorCode } from '../errors.js';

// The line syntax shared by minisign's key and signature files, parsed strictly and with limits.

export const UNTRUSTED_COMMENT_PREFIX = 'untrusted comment: ';
export const TRUSTED_COMMENT_PREFIX = 'trusted comment: ';
/** Longest comment text minisign's 1024-byte line buffer takes back with its prefix and a CRLF. */
export const MAX_UNTRUSTED_COMMENT_BYTES = 1000;
/** minisign 0.11 refuses to sign a longer trusted comment. */
export const MAX_TRUSTED_COMMENT_BYTES = 8173;
/** No key or signature file comes near this; anything larger is refused before it is split. */
export const MAX_MINISIGN_FILE_CHARS = 16 * 1024;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// C0 controls but tab, DEL and C1 controls: a comment printed on a terminal must not be able to drive it.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/;

/**
 * Splits a minisign file into exactly `count` lines, LF or CRLF, the last newline optional. Anything more
 * than one trailing newline is refused, as is a file longer than any real one.
 */
export function splitLines(text: string, count: number, code: GatehouseErrorCode, what: string): string[] {
  if (text.length > MAX_MINISIGN_FILE_CHARS) throw new GatehouseError(code, `${what}: longer than ${MAX_MINISIGN_FILE_CHARS} characters`);
  const lines = text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  if (lines.length === count + 1 && lines[count] === '') lines.pop();
  if (lines.length !== count) throw new GatehouseError(code, `${what}: expected ${count} lines, found ${lines.length}`);
  return lines;
}

/** The text after `prefix` on a comment line, checked to be printable and of bounded length. */
export function commentText(line: string, prefix: string, maxBytes: number, code: GatehouseErrorCode, what: string): string {
  if (!line.startsWith(prefix)) throw new GatehouseError(code, `${what}: expected a line starting with "${prefix}"`);
  const text = line.slice(prefix.length);
  checkComment(text, maxBytes, code, what);
  return text;
}

/** Refuses comment text that could not be written on one line and read back unchanged. */
export function checkComment(text: string, maxBytes: number, code: GatehouseErrorCode, what: string): void {
  if (CONTROL.test(text)) throw new GatehouseError(code, `${what}: comment contains control characters`);
  if (Buffer.from(text, 'utf8').toString('utf8') !== text) throw new GatehouseError(code, `${what}: comment is not valid Unicode`);
  if (Buffer.byteLength(text, 'utf8') > maxBytes) throw new GatehouseError(code, `${what}: comment longer than ${maxBytes} bytes`);
}

/** Decodes canonical base64 of exactly `length` bytes; any other spelling of the same bytes is refused. */
export function decodeBase64(line: string, length: number, code: GatehouseErrorCode, what: string): Buffer {
  if (!BASE64.test(line)) throw new GatehouseError(code, `${what}: not base64`);
  const bytes = Buffer.from(line, 'base64');
  if (bytes.length !== length) throw new GatehouseError(code, `${what}: ${bytes.length} bytes where ${length} were expected`);
  // Non-zero padding bits would give one signature several spellings; only the canonical one is accepted.
  if (bytes.toString('base64') !== line) throw new GatehouseError(code, `${what}: not canonical base64`);
  return bytes;
}

/** A key id as minisign prints it: the 8 bytes as a little-endian integer in upper-case hex. */
export function keyIdHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).reverse().toString('hex').toUpperCase();
}

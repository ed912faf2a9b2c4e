/**
 * Text a peer chose (a plugin's log line, a gRPC status message, a broker refusal), made safe to put into
 * a host's log record or error message.
 */

// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNSAFE_CHARACTERS = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/g;

function escapeCharacter(character: string): string {
  if (character === '\n') return '\\n';
  if (character === '\r') return '\\r';
  return `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/**
 * Plugin text made one visible line: line breaks (\n, \r, U+2028, U+2029) and the other control
 * characters but tab become escapes such as "\\n" and "\\u001b". Stops a plugin from ending the host's
 * log line and forging the next one in a line-oriented log, and from sending terminal escapes to
 * whoever reads the log or an error message.
 */
export function oneLine(text: string): string {
  return text.replace(UNSAFE_CHARACTERS, escapeCharacter);
}

/** Longest peer text kept in an error message; the rest is cut, so one status cannot flood a log line. */
export const MAX_PEER_TEXT_CHARS = 1024;

/**
 * A peer's text for one of our error messages: one visible line (see oneLine), at most
 * MAX_PEER_TEXT_CHARS long. Attack: a plugin's grpc-message or broker error carrying terminal escapes or
 * a forged log line into every error a host prints or logs.
 */
export function peerText(text: string): string {
  return oneLine(text.length > MAX_PEER_TEXT_CHARS ? `${text.slice(0, MAX_PEER_TEXT_CHARS)}…` : text);
}

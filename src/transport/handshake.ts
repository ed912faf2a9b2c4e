/**
 * go-plugin's handshake line, the first line a plugin prints on stdout:
 *
 *     CORE|APP|NETWORK|ADDR|PROTOCOL[|SERVER_CERT[|MULTIPLEX]]
 *
 * Five fields is what go-plugin's docs teach plugins in other languages to print (no certificate:
 * plaintext, which the host accepts only when asked for by name); four would be net/rpc, as in go-plugin.
 * The line comes from a child process we do not trust yet, so the parser is strict: every field has one
 * accepted shape, anything else is refused with its own error code before the host acts on it.
 */
import { X509Certificate } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { GatehouseError } from '../errors.js';
import { DEFAULT_MAX_PORT, DEFAULT_MIN_PORT, isProtocolVersion, MAX_PROTOCOL_VERSION_DIGITS, validateOfferedVersions } from './env.js';

/** A P-521 certificate is about 1 KiB in base64; 8 KiB leaves room without letting a plugin make us buffer much. */
export const MAX_HANDSHAKE_LINE_BYTES = 8 * 1024;

/** Upper bound on the decoded certificate, so a plugin cannot hand the X.509 parser an arbitrary blob. */
export const MAX_SERVER_CERTIFICATE_BYTES = 8 * 1024;

/** `sockaddr_un.sun_path` is 108 bytes on Linux including the terminating NUL. */
export const MAX_UNIX_SOCKET_PATH_BYTES = 107;

export const CORE_PROTOCOL_VERSION = 1;

export interface HandshakeLine {
  /** Negotiated application protocol version. */
  appVersion: number;
  network: 'unix' | 'tcp';
  /** A bare absolute socket path, or `ip:port` / `[v6]:port`. */
  address: string;
  /** DER of the plugin's certificate; absent when the field is empty. */
  serverCertificate?: Buffer;
  /** The seventh field, present only when the plugin printed one. */
  multiplex?: boolean;
}

const QUOTE_PREFIX_CHARS = 32;

/**
 * Quotes at most a short prefix of plugin-supplied text. JSON escaping turns control characters into
 * visible escapes, which stops a plugin from writing terminal escape sequences or fake lines into our logs.
 */
function quote(value: string): string {
  const cut = value.length > QUOTE_PREFIX_CHARS;
  return JSON.stringify(cut ? value.slice(0, QUOTE_PREFIX_CHARS) : value) + (cut ? '…' : '');
}

function invalid(message: string): GatehouseError {
  return new GatehouseError('HANDSHAKE_INVALID', `plugin handshake: ${message}`);
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

const PORT_PATTERN = /^[1-9][0-9]{0,4}$/;
const APP_VERSION_PATTERN = new RegExp(`^[1-9][0-9]{0,${MAX_PROTOCOL_VERSION_DIGITS - 1}}$`);
const RAW_STD_BASE64_PATTERN = /^[A-Za-z0-9+/]+$/;

/**
 * Parses the handshake line a plugin printed (without its "\n"). `offeredVersions` are the application
 * protocol versions the host put in PLUGIN_PROTOCOL_VERSIONS; the plugin must have picked one of them.
 */
export function parseHandshakeLine(line: string, offeredVersions: readonly number[]): HandshakeLine {
  validateOfferedVersions(offeredVersions, 'INVALID_OPTIONS');

  // Checked before the line is touched, so an oversized one costs only this comparison: stops a
  // plugin from making the host split, decode or quote megabytes.
  if (line.length > MAX_HANDSHAKE_LINE_BYTES || Buffer.byteLength(line, 'utf8') > MAX_HANDSHAKE_LINE_BYTES) {
    throw new GatehouseError(
      'HANDSHAKE_TOO_LONG',
      `plugin handshake: line is longer than ${MAX_HANDSHAKE_LINE_BYTES} bytes`,
    );
  }
  const body = line.endsWith('\r') ? line.slice(0, -1) : line;
  const fields = body.split('|');
  if (fields.length < 4 || fields.length > 7) {
    // Almost always the plugin's own output: the host reads the first stdout line as the handshake.
    throw invalid(
      `expected 5 to 7 "|"-separated fields, got ${fields.length}: ${quote(body)}. If that is the plugin's own output, ` +
        "it printed to stdout before its handshake line (a print that runs before go-plugin's plugin.Serve() or " +
        "gatehouse's serve()), which go-plugin hosts refuse too: write it to stderr or log it instead",
    );
  }
  // go-plugin reads a missing PROTOCOL as net/rpc; the checks below then name it.
  const [core, app, network, address, protocol = '', certificate = '', multiplex] = fields as [
    string,
    string,
    string,
    string,
    string | undefined,
    string | undefined,
    string | undefined,
  ];

  if (core !== String(CORE_PROTOCOL_VERSION)) {
    throw new GatehouseError(
      'CORE_VERSION_MISMATCH',
      `plugin speaks go-plugin core protocol ${quote(core)}, gatehouse speaks ${CORE_PROTOCOL_VERSION}`,
    );
  }

  const offered = offeredVersions.join(',');
  if (!APP_VERSION_PATTERN.test(app)) {
    throw new GatehouseError(
      'PROTOCOL_VERSION_MISMATCH',
      `plugin reported application protocol version ${quote(app)}, which is not a positive decimal integer; the host offered ${offered}`,
    );
  }
  const appVersion = Number(app);
  // A plugin may only pick from what we offered: stops it steering the host onto an API version the host
  // never agreed to speak.
  if (!offeredVersions.includes(appVersion)) {
    throw new GatehouseError(
      'PROTOCOL_VERSION_MISMATCH',
      `plugin speaks application protocol version ${appVersion}, the host offered ${offered}`,
    );
  }

  if (network !== 'unix' && network !== 'tcp') {
    throw new GatehouseError(
      'NETWORK_UNSUPPORTED',
      `plugin listens on network ${quote(network)}; gatehouse accepts only "unix" and "tcp"`,
    );
  }
  if (network === 'unix') checkUnixAddress(address);
  else checkTcpAddress(address);

  if (protocol === 'netrpc' || protocol === '') {
    throw new GatehouseError(
      'NETRPC_UNSUPPORTED',
      `plugin speaks go-plugin's net/rpc protocol; gatehouse speaks only gRPC, so the plugin must be built ` +
        `with go-plugin's GRPCServer (plugin.Serve with GRPCServer: plugin.DefaultGRPCServer) and GRPCPlugin implementations`,
    );
  }
  if (protocol !== 'grpc') {
    throw invalid(`unknown protocol ${quote(protocol)}; expected "grpc"`);
  }

  const result: HandshakeLine = { appVersion, network, address };
  // An empty field means "no certificate". Whether the host then refuses plaintext is its policy
  // (PLAINTEXT_REFUSED); the parser only reports what the plugin said.
  if (certificate !== '') result.serverCertificate = decodeCertificateField(certificate);

  if (multiplex !== undefined) {
    if (multiplex !== 'true' && multiplex !== 'false') {
      throw invalid(`multiplex field must be "true" or "false", got ${quote(multiplex)}`);
    }
    result.multiplex = multiplex === 'true';
  }
  return result;
}

function checkUnixAddress(address: string): void {
  if (address.startsWith('unix:')) {
    throw invalid(`unix address must be a bare path, not a "unix:" URI: ${quote(address)}`);
  }
  // Relative paths resolve against whatever directory the host runs in, and Linux abstract sockets
  // ("@name") have no file permissions: only an absolute filesystem path stops another local user from
  // squatting the name the host will dial.
  if (!address.startsWith('/')) {
    throw invalid(`unix socket path must be absolute: ${quote(address)}`);
  }
  // A NUL would cut the path short inside the kernel, so the host would dial a different socket than the
  // one the checks above looked at.
  if (address.includes('\0')) {
    throw invalid('unix socket path contains a NUL byte');
  }
  if (Buffer.byteLength(address, 'utf8') > MAX_UNIX_SOCKET_PATH_BYTES) {
    throw invalid(`unix socket path is longer than ${MAX_UNIX_SOCKET_PATH_BYTES} bytes: ${quote(address)}`);
  }
}

function checkTcpAddress(address: string): void {
  const colon = address.lastIndexOf(':');
  if (colon < 0) throw invalid(`tcp address has no port: ${quote(address)}`);
  const host = address.slice(0, colon);
  const port = address.slice(colon + 1);

  let ip: string;
  let family: 'ipv4' | 'ipv6';
  if (host.startsWith('[') && host.endsWith(']')) {
    ip = host.slice(1, -1);
    family = 'ipv6';
    // A zone ("%eth0") names a link-local interface and is never loopback; refusing it also keeps the
    // string we check identical to the one the host dials.
    if (isIP(ip) !== 6 || ip.includes('%')) {
      throw invalid(`tcp address is not a bracketed IPv6 literal: ${quote(address)}`);
    }
  } else {
    ip = host;
    family = 'ipv4';
    // Only IP literals: a host name would need a DNS lookup, and a name can resolve anywhere, including
    // to another machine that would then receive the host's connection.
    if (isIP(ip) !== 4) {
      throw invalid(
        `tcp address must be an IP literal ("127.0.0.1:port" or "[::1]:port"); host names are refused: ${quote(address)}`,
      );
    }
  }
  if (!PORT_PATTERN.test(port) || Number(port) > 65535) {
    throw invalid(`tcp port must be a number from 1 to 65535: ${quote(address)}`);
  }
  // Refused here, before any connection attempt: stops a plugin from pointing the host at a remote or
  // LAN service, so the host's traffic never leaves the machine.
  if (!LOOPBACK.check(ip, family)) {
    throw new GatehouseError(
      'ADDRESS_NOT_LOOPBACK',
      `plugin listens on ${quote(address)}, which is not a loopback address (127.0.0.0/8 or ::1)`,
    );
  }
}

/**
 * The handshake's address rules, for an address a peer announces later (the broker's ConnInfo): a bare
 * absolute socket path, or a loopback IP literal with its port.
 */
export function checkAnnouncedAddress(network: string, address: string): 'unix' | 'tcp' {
  if (network === 'unix') checkUnixAddress(address);
  else if (network === 'tcp') checkTcpAddress(address);
  else throw new GatehouseError('NETWORK_UNSUPPORTED', `network ${quote(network)} is not "unix" or "tcp"`);
  return network;
}

/**
 * A TLS plugin on TCP must listen within the range the host gave it (PLUGIN_MIN_PORT..PLUGIN_MAX_PORT).
 * Attack: a plugin steering the host's TLS client at another local service's port. A plaintext plugin,
 * which the caller asked for by name, is exempt: go-plugin's non-Go contract lets it print any port
 * (its Python example prints 127.0.0.1:1234), so it can steer the host to any loopback port.
 */
export function checkAnnouncedPort(
  handshake: Pick<HandshakeLine, 'network' | 'address' | 'serverCertificate'>,
  minPort: number = DEFAULT_MIN_PORT,
  maxPort: number = DEFAULT_MAX_PORT,
): void {
  if (handshake.network !== 'tcp' || handshake.serverCertificate === undefined) return;
  const { port } = tcpEndpoint(handshake.address);
  if (port < minPort || port > maxPort) {
    throw new GatehouseError(
      'PORT_OUT_OF_RANGE',
      `plugin handshake: port ${port} is outside the range ${minPort}-${maxPort} the host gave it (PLUGIN_MIN_PORT, PLUGIN_MAX_PORT); ` +
        'the plugin must listen within it, or launch with minPort/maxPort that include the port',
    );
  }
}

/** Host and port of a TCP address this module validated: `127.0.0.1:1234` or `[::1]:1234`. */
export function tcpEndpoint(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(colon + 1)) };
}

function certificateError(message: string, cause?: unknown): GatehouseError {
  return new GatehouseError('CERTIFICATE_INVALID', `plugin handshake: server certificate ${message}`, { cause });
}

function decodeCertificateField(field: string): Buffer {
  // The bound comes before decoding so the allocation is bounded too.
  if (field.length > Math.ceil((MAX_SERVER_CERTIFICATE_BYTES * 4) / 3)) {
    throw certificateError(`is larger than ${MAX_SERVER_CERTIFICATE_BYTES} bytes`);
  }
  // Node's base64 decoder silently skips characters it does not know; a strict alphabet check stops a
  // plugin from smuggling bytes past us that a Go host would reject, or vice versa.
  if (!RAW_STD_BASE64_PATTERN.test(field)) {
    // The two mistakes a plugin written outside Go makes: its language's base64 pads, or it sends PEM.
    if (field.startsWith('-----BEGIN')) {
      throw certificateError(
        'is PEM; the sixth field must be the DER bytes of the certificate in unpadded standard base64, ' +
          'on the same line (PEM\'s base64 body joined into one line, without the BEGIN/END lines and "=" padding)',
      );
    }
    if (/^[A-Za-z0-9+/]+={1,2}$/.test(field)) {
      throw certificateError(
        'has "=" padding; the sixth field is unpadded standard base64 of the DER (go-plugin\'s ' +
          'base64.RawStdEncoding): strip the trailing "="',
      );
    }
    throw certificateError('is not unpadded standard base64 (only A-Z a-z 0-9 + / are allowed, no "=")');
  }
  if (field.length % 4 === 1) {
    throw certificateError(`has a length (${field.length}) that no unpadded base64 encoding can have`);
  }
  const der = Buffer.from(field, 'base64');
  // Non-zero leftover bits mean several strings decode to the same bytes; requiring the canonical form
  // keeps one certificate to one spelling.
  if (encodeCertificateField(der) !== field) {
    throw certificateError('is not canonical base64 (non-zero trailing bits)');
  }
  // node:crypto also accepts PEM text; DER always starts with a SEQUENCE tag, so this keeps the parser on
  // the DER path.
  if (der[0] !== 0x30) {
    if (der.subarray(0, 10).toString('latin1') === '-----BEGIN') {
      throw certificateError('is base64 of PEM text, not of the DER bytes: encode the DER (the bytes PEM\'s body decodes to)');
    }
    throw certificateError('is not DER');
  }
  let parsed: X509Certificate;
  try {
    parsed = new X509Certificate(der);
  } catch (error) {
    throw certificateError('does not parse as an X.509 certificate', error);
  }
  // The parser ignores bytes after the certificate; refusing them stops a second, hidden payload riding
  // along with the one we pin.
  if (parsed.raw.length !== der.length) {
    throw certificateError('has trailing bytes after the certificate');
  }
  return der;
}

/** go-plugin's certificate field: `base64.RawStdEncoding`, the standard alphabet without "=" padding. */
export function encodeCertificateField(der: Buffer): string {
  // An empty field means "no certificate"; encoding an empty buffer would silently downgrade to plaintext.
  if (der.length === 0) {
    throw new GatehouseError('INVALID_OPTIONS', 'cannot encode an empty certificate');
  }
  return Buffer.from(der).toString('base64').replace(/=+$/, '');
}

/**
 * Formats a handshake line (without the trailing newline) with CORE 1 and PROTOCOL grpc. The result is
 * checked with parseHandshakeLine, so a plugin can never announce a line its host would refuse.
 */
export function formatHandshakeLine(h: HandshakeLine): string {
  // "|", "\r" and "\n" inside a field would let one value forge the fields after it, or end the line.
  if (/[|\r\n]/.test(h.address)) {
    throw new GatehouseError('INVALID_OPTIONS', 'handshake address contains "|" or a line break');
  }
  if (!isProtocolVersion(h.appVersion)) {
    throw new GatehouseError('INVALID_OPTIONS', 'handshake appVersion must be a positive integer');
  }
  const fields = [
    String(CORE_PROTOCOL_VERSION),
    String(h.appVersion),
    h.network,
    h.address,
    'grpc',
    h.serverCertificate === undefined ? '' : encodeCertificateField(h.serverCertificate),
  ];
  if (h.multiplex !== undefined) fields.push(h.multiplex ? 'true' : 'false');
  const line = fields.join('|');
  try {
    parseHandshakeLine(line, [h.appVersion]);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new GatehouseError('INVALID_OPTIONS', `handshake line would be refused by the host: ${reason}`, {
      cause: error,
    });
  }
  return line;
}

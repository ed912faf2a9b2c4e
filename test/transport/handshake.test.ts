import test from 'ava';
import fc from 'fast-check';
import crypto from 'node:crypto';
import { GatehouseError, type GatehouseErrorCode } from '../../src/errors.js';
import { generateEphemeralIdentity } from '../../src/tls/certificate.js';
import {
  encodeCertificateField,
  formatHandshakeLine,
  MAX_HANDSHAKE_LINE_BYTES,
  parseHandshakeLine,
  type HandshakeLine,
} from '../../src/transport/handshake.js';


async function selfSignedDer(): Promise<Buffer> {
  return generateEphemeralIdentity().certificateDer;
}

const certificates: Buffer[] = [];
test.before(async () => {
  certificates.push(await selfSignedDer(), await selfSignedDer());
});
function certificate(): Buffer {
  const der = certificates[0];
  if (der === undefined) throw new Error('test.before did not run');
  return der;
}

const OFFERED = [1, 2];

function refuses(t: import('ava').ExecutionContext, line: string, code: GatehouseErrorCode, offered = OFFERED) {
  const error = t.throws(() => parseHandshakeLine(line, offered), { instanceOf: GatehouseError });
  t.is(error?.code, code, error?.message);
  return error;
}

test('a go-plugin gRPC line over a unix socket without TLS parses (the line ends in "|")', (t) => {
  t.deepEqual(parseHandshakeLine('1|2|unix|/tmp/plugin123456|grpc|', OFFERED), {
    appVersion: 2,
    network: 'unix',
    address: '/tmp/plugin123456',
  });
});

test('the certificate field is unpadded standard base64 of the DER, as go-plugin\'s AutoMTLS prints it', (t) => {
  const der = certificate();
  const field = encodeCertificateField(der);
  t.false(field.includes('='));
  t.deepEqual(Buffer.from(field, 'base64'), der);
  const parsed = parseHandshakeLine(`1|1|tcp|127.0.0.1:10000|grpc|${field}`, OFFERED);
  t.deepEqual(parsed.serverCertificate, der);
});

test('the seventh field gives multiplex true or false', (t) => {
  t.true(parseHandshakeLine('1|1|unix|/tmp/p|grpc||true', OFFERED).multiplex);
  t.false(parseHandshakeLine('1|1|unix|/tmp/p|grpc||false', OFFERED).multiplex);
  t.false('multiplex' in parseHandshakeLine('1|1|unix|/tmp/p|grpc|', OFFERED));
});

test('a single trailing "\\r" is tolerated, two are not', (t) => {
  t.is(parseHandshakeLine('1|1|unix|/tmp/p|grpc||true\r', OFFERED).multiplex, true);
  refuses(t, '1|1|unix|/tmp/p|grpc||true\r\r', 'HANDSHAKE_INVALID');
});

test('a first line that is not a handshake says the plugin printed to stdout before it, and what to do', (t) => {
  // The usual cause: a fmt.Println (or console.log) that runs before plugin.Serve() / serve(); go-plugin
  // hosts refuse it as well ("Unrecognized remote plugin message").
  for (const line of ['starting counter plugin', 'config: loaded|ok']) {
    const error = refuses(t, line, 'HANDSHAKE_INVALID');
    t.regex(error?.message ?? '', /printed to stdout before its handshake line/);
    t.regex(error?.message ?? '', /plugin\.Serve\(\)/);
    t.regex(error?.message ?? '', /stderr/);
    t.true(error?.message.includes(JSON.stringify(line.slice(0, 32))), error?.message);
  }
});

test('a line longer than MAX_HANDSHAKE_LINE_BYTES is HANDSHAKE_TOO_LONG, counted in bytes', (t) => {
  const prefix = '1|1|unix|/tmp/p|grpc|';
  refuses(t, prefix + 'A'.repeat(MAX_HANDSHAKE_LINE_BYTES), 'HANDSHAKE_TOO_LONG');
  // Half as many characters, but each "é" is two bytes in UTF-8.
  refuses(t, prefix + 'é'.repeat(MAX_HANDSHAKE_LINE_BYTES / 2), 'HANDSHAKE_TOO_LONG');
});

test('a line with fewer than 4 or more than 7 fields is HANDSHAKE_INVALID and says how many', (t) => {
  for (const [line, count] of [
    ['', 1],
    ['1|1|unix', 3],
    ['1|1|unix|/tmp/p|grpc||true|x', 8],
  ] as const) {
    const error = refuses(t, line, 'HANDSHAKE_INVALID');
    t.true(error?.message.includes(`got ${count}`), error?.message);
  }
});

test('five fields naming grpc, as go-plugin teaches plugins in other languages, parse as a line without certificate', (t) => {
  const parsed = parseHandshakeLine('1|1|tcp|127.0.0.1:1234|grpc', OFFERED);
  t.deepEqual(parsed, { appVersion: 1, network: 'tcp', address: '127.0.0.1:1234' });
  t.deepEqual(parseHandshakeLine('1|1|tcp|127.0.0.1:1234|grpc|', OFFERED), parsed, 'the same as an empty sixth field');
});

test('four fields, or five naming netrpc, are net/rpc as go-plugin reads them: NETRPC_UNSUPPORTED', (t) => {
  refuses(t, '1|1|unix|/tmp/p', 'NETRPC_UNSUPPORTED');
  refuses(t, '1|1|tcp|127.0.0.1:1234|netrpc', 'NETRPC_UNSUPPORTED');
});

test('CORE must be exactly "1": anything else is CORE_VERSION_MISMATCH naming the value', (t) => {
  for (const core of ['2', '0', '01', '+1', ' 1', '']) {
    const error = refuses(t, `${core}|1|unix|/tmp/p|grpc|`, 'CORE_VERSION_MISMATCH');
    t.true(error?.message.includes(JSON.stringify(core)), error?.message);
  }
});

test('an APP version the host did not offer is PROTOCOL_VERSION_MISMATCH naming both sides', (t) => {
  const error = refuses(t, '1|3|unix|/tmp/p|grpc|', 'PROTOCOL_VERSION_MISMATCH', [1, 2]);
  t.regex(error?.message ?? '', /\b3\b/);
  t.true(error?.message.includes('1,2'), error?.message);
});

test('an APP field that is not a plain decimal is PROTOCOL_VERSION_MISMATCH', (t) => {
  for (const app of ['', '-1', '+1', '01', '1.0', '1e0', '0x1', ' 1', '1 ', '٣', '9999999999']) {
    refuses(t, `1|${app}|unix|/tmp/p|grpc|`, 'PROTOCOL_VERSION_MISMATCH');
  }
});

test('a NETWORK other than "unix" or "tcp" is NETWORK_UNSUPPORTED', (t) => {
  for (const network of ['udp', 'unixgram', 'unixpacket', 'tcp4', 'TCP', '']) {
    refuses(t, `1|1|${network}|/tmp/p|grpc|`, 'NETWORK_UNSUPPORTED');
  }
});

test('a unix ADDR must be an absolute path: relative and abstract sockets are HANDSHAKE_INVALID', (t) => {
  for (const address of ['', 'plugin.sock', './plugin.sock', '@abstract', '~/plugin.sock']) {
    refuses(t, `1|1|unix|${address}|grpc|`, 'HANDSHAKE_INVALID');
  }
});

test('a unix ADDR with a "unix:" prefix is HANDSHAKE_INVALID', (t) => {
  const error = refuses(t, '1|1|unix|unix:/tmp/p|grpc|', 'HANDSHAKE_INVALID');
  t.true(error?.message.includes('unix:'));
  refuses(t, '1|1|unix|unix:///tmp/p|grpc|', 'HANDSHAKE_INVALID');
});

test('a unix ADDR with a NUL byte is HANDSHAKE_INVALID', (t) => {
  refuses(t, '1|1|unix|/tmp/p\0/evil|grpc|', 'HANDSHAKE_INVALID');
});

test('a unix ADDR longer than 107 bytes (sun_path) is HANDSHAKE_INVALID', (t) => {
  t.is(parseHandshakeLine(`1|1|unix|/${'a'.repeat(106)}|grpc|`, OFFERED).address.length, 107);
  refuses(t, `1|1|unix|/${'a'.repeat(107)}|grpc|`, 'HANDSHAKE_INVALID');
  refuses(t, `1|1|unix|/${'é'.repeat(54)}|grpc|`, 'HANDSHAKE_INVALID');
});

test('tcp ADDRs on loopback IP literals parse', (t) => {
  for (const address of ['127.0.0.1:10000', '127.1.2.3:1', '[::1]:65535', '[::ffff:127.0.0.1]:80', '[0:0:0:0:0:0:0:1]:5']) {
    t.is(parseHandshakeLine(`1|1|tcp|${address}|grpc|`, OFFERED).address, address);
  }
});

test('a tcp ADDR on a non-loopback IP is ADDRESS_NOT_LOOPBACK, refused in the parser', (t) => {
  for (const address of ['0.0.0.0:1234', '10.0.0.1:1234', '128.0.0.1:1234', '[::]:1234', '[::ffff:10.0.0.1]:1', '[fe80::1]:1', '[::127.0.0.1]:1']) {
    refuses(t, `1|1|tcp|${address}|grpc|`, 'ADDRESS_NOT_LOOPBACK');
  }
});

test('a tcp ADDR with a host name is refused, so no DNS lookup can send us elsewhere', (t) => {
  for (const address of ['localhost:1234', 'example.com:443', 'localhost.:1', '127.1:80', '0x7f.0.0.1:80']) {
    const error = refuses(t, `1|1|tcp|${address}|grpc|`, 'HANDSHAKE_INVALID');
    t.true(error?.message.includes('host names are refused'), error?.message);
  }
});

test('a malformed tcp ADDR or port is HANDSHAKE_INVALID', (t) => {
  for (const address of [
    '127.0.0.1',
    '127.0.0.1:',
    '127.0.0.1:0',
    '127.0.0.1:65536',
    '127.0.0.1:080',
    '127.0.0.1:-1',
    '127.0.0.1: 80',
    '::1:80',
    '[::1:80',
    '[127.0.0.1]:80',
    '[::1%lo]:80',
    '/tmp/p',
  ]) {
    refuses(t, `1|1|tcp|${address}|grpc|`, 'HANDSHAKE_INVALID');
  }
});

test('PROTOCOL "netrpc" or empty is NETRPC_UNSUPPORTED and says to build with GRPCServer / GRPCPlugin', (t) => {
  for (const protocol of ['netrpc', '']) {
    const error = refuses(t, `1|1|unix|/tmp/p|${protocol}|`, 'NETRPC_UNSUPPORTED');
    t.regex(error?.message ?? '', /only gRPC/);
    t.regex(error?.message ?? '', /GRPCServer/);
    t.regex(error?.message ?? '', /GRPCPlugin/);
  }
});

test('any other PROTOCOL is HANDSHAKE_INVALID', (t) => {
  for (const protocol of ['GRPC', 'grpc ', 'http', 'h2']) {
    refuses(t, `1|1|unix|/tmp/p|${protocol}|`, 'HANDSHAKE_INVALID');
  }
});

test('a SERVER_CERT that is not strict unpadded standard base64 is CERTIFICATE_INVALID', (t) => {
  const field = encodeCertificateField(certificate());
  const padded = certificate().toString('base64');
  const variants = [
    field.slice(0, -1) + '=',
    padded.endsWith('=') ? padded : `${field}==`,
    field.replace(/\+/g, '-').replace(/\//g, '_') + (/[+/]/.test(field) ? '' : '-'),
    `${field.slice(0, 10)} ${field.slice(10)}`,
    `${field.slice(0, 10)}\t${field.slice(10)}`,
    `${field}A`.slice(0, field.length - (field.length % 4) + 1),
    'QR',
  ];
  for (const bad of variants) refuses(t, `1|1|unix|/tmp/p|grpc|${bad}`, 'CERTIFICATE_INVALID');
});

test('a SERVER_CERT with "=" padding, or PEM instead of base64 DER, says what to send instead (what other languages\' base64 gives)', (t) => {
  // Python's base64.b64encode, Java's Base64.getEncoder() and most others pad; go-plugin's host refuses it too.
  const padded = certificate().toString('base64').replace(/=*$/, '=');
  const paddedError = refuses(t, `1|1|unix|/tmp/p|grpc|${padded}`, 'CERTIFICATE_INVALID');
  t.regex(paddedError?.message ?? '', /padding/);
  t.regex(paddedError?.message ?? '', /strip/);
  t.regex(paddedError?.message ?? '', /sixth field/);
  // The PEM text itself (its first line, or with the line breaks taken out).
  const pemText = new crypto.X509Certificate(certificate()).toString().replace(/\n/g, '');
  const pemError = refuses(t, `1|1|unix|/tmp/p|grpc|${pemText}`, 'CERTIFICATE_INVALID');
  t.regex(pemError?.message ?? '', /is PEM/);
  t.regex(pemError?.message ?? '', /DER/);
  // base64 of the PEM text rather than of the DER.
  const pemBase64 = encodeCertificateField(Buffer.from(new crypto.X509Certificate(certificate()).toString()));
  const pemBase64Error = refuses(t, `1|1|unix|/tmp/p|grpc|${pemBase64}`, 'CERTIFICATE_INVALID');
  t.regex(pemBase64Error?.message ?? '', /base64 of PEM text/);
  t.regex(pemBase64Error?.message ?? '', /DER/);
});

test('a SERVER_CERT with a length no unpadded base64 can have is CERTIFICATE_INVALID', (t) => {
  refuses(t, `1|1|unix|/tmp/p|grpc|${'A'.repeat(4 * 20 + 1)}`, 'CERTIFICATE_INVALID');
});

test('a SERVER_CERT that is base64 but not an X.509 certificate is CERTIFICATE_INVALID', (t) => {
  const junk = encodeCertificateField(Buffer.from('this is certainly not a DER certificate, not at all'));
  refuses(t, `1|1|unix|/tmp/p|grpc|${junk}`, 'CERTIFICATE_INVALID');
  const sequence = encodeCertificateField(Buffer.concat([Buffer.from([0x30, 0x40]), Buffer.alloc(64)]));
  refuses(t, `1|1|unix|/tmp/p|grpc|${sequence}`, 'CERTIFICATE_INVALID');
  const pem = encodeCertificateField(Buffer.from(new crypto.X509Certificate(certificate()).toString()));
  refuses(t, `1|1|unix|/tmp/p|grpc|${pem}`, 'CERTIFICATE_INVALID');
});

test('a SERVER_CERT with bytes after the certificate is CERTIFICATE_INVALID', (t) => {
  const field = encodeCertificateField(Buffer.concat([certificate(), Buffer.from('extra')]));
  refuses(t, `1|1|unix|/tmp/p|grpc|${field}`, 'CERTIFICATE_INVALID');
});

test('a MULTIPLEX field other than "true" or "false" is HANDSHAKE_INVALID', (t) => {
  for (const multiplex of ['', 'TRUE', '1', 't', 'yes', 'true ']) {
    refuses(t, `1|1|unix|/tmp/p|grpc||${multiplex}`, 'HANDSHAKE_INVALID');
  }
});

test('error messages quote only a short prefix of the plugin\'s text, with control characters escaped', (t) => {
  const long = `\u001b[31m${'x'.repeat(5000)}`;
  const error = refuses(t, `1|1|${long}|/tmp/p|grpc|`, 'NETWORK_UNSUPPORTED');
  t.true((error?.message.length ?? Infinity) < 200, error?.message);
  t.false(error?.message.includes('\u001b'));
});

test('format prints CORE 1 and PROTOCOL grpc, without a newline', (t) => {
  t.is(formatHandshakeLine({ appVersion: 3, network: 'unix', address: '/tmp/p' }), '1|3|unix|/tmp/p|grpc|');
  t.is(
    formatHandshakeLine({ appVersion: 1, network: 'tcp', address: '127.0.0.1:1', multiplex: false }),
    '1|1|tcp|127.0.0.1:1|grpc||false',
  );
});

test('format refuses what the host would refuse, and fields that would forge other fields, with INVALID_OPTIONS', (t) => {
  const bad: HandshakeLine[] = [
    { appVersion: 1, network: 'unix', address: '/tmp/p|grpc|' },
    { appVersion: 1, network: 'unix', address: '/tmp/p\n1|1|tcp|10.0.0.1:1|grpc|' },
    { appVersion: 1, network: 'tcp', address: '10.0.0.1:80' },
    { appVersion: 0, network: 'unix', address: '/tmp/p' },
    { appVersion: 1.5, network: 'unix', address: '/tmp/p' },
    { appVersion: 1, network: 'udp' as 'tcp', address: '127.0.0.1:1' },
    { appVersion: 1, network: 'unix', address: '/tmp/p', serverCertificate: Buffer.alloc(0) },
    { appVersion: 1, network: 'unix', address: '/tmp/p', serverCertificate: Buffer.from('not a cert') },
  ];
  for (const h of bad) {
    const error = t.throws(() => formatHandshakeLine(h), { instanceOf: GatehouseError });
    t.is(error?.code, 'INVALID_OPTIONS', JSON.stringify(h));
  }
});

test('encodeCertificateField refuses an empty certificate, which would read as "no TLS"', (t) => {
  const error = t.throws(() => encodeCertificateField(Buffer.alloc(0)), { instanceOf: GatehouseError });
  t.is(error?.code, 'INVALID_OPTIONS');
});

test('parse refuses an empty or malformed offered list with INVALID_OPTIONS', (t) => {
  for (const offered of [[], [0], [1, 1], [1.5], [-1]]) {
    refuses(t, '1|1|unix|/tmp/p|grpc|', 'INVALID_OPTIONS', offered);
  }
});

const unixPath = fc
  .string({ unit: 'binary', maxLength: 100 })
  .map((s) => `/${s}`)
  .filter((path) => !/[|\r\n\0]/.test(path) && Buffer.byteLength(path) <= 107);
const tcpAddress = fc.oneof(
  fc
    .tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.integer({ min: 1, max: 65535 }))
    .map(([a, b, c, port]) => `127.${a}.${b}.${c}:${port}`),
  fc.integer({ min: 1, max: 65535 }).map((port) => `[::1]:${port}`),
  fc.integer({ min: 1, max: 65535 }).map((port) => `[::ffff:127.0.0.1]:${port}`),
);
const handshake: fc.Arbitrary<HandshakeLine> = fc
  .record({
    appVersion: fc.integer({ min: 1, max: 999_999_999 }),
    where: fc.oneof(
      unixPath.map((address) => ({ network: 'unix' as const, address })),
      tcpAddress.map((address) => ({ network: 'tcp' as const, address })),
    ),
    certificateIndex: fc.option(fc.integer({ min: 0, max: 1 }), { nil: undefined }),
    multiplex: fc.option(fc.boolean(), { nil: undefined }),
  })
  .map(({ appVersion, where, certificateIndex, multiplex }) => {
    const h: HandshakeLine = { appVersion, ...where };
    if (certificateIndex !== undefined) h.serverCertificate = certificates[certificateIndex] ?? Buffer.alloc(0);
    if (multiplex !== undefined) h.multiplex = multiplex;
    return h;
  });

test('property: format then parse gives back the same handshake', (t) => {
  fc.assert(
    fc.property(handshake, fc.array(fc.integer({ min: 1, max: 999_999_999 }), { maxLength: 5 }), (h, others) => {
      const offered = [...new Set([...others, h.appVersion])];
      t.deepEqual(parseHandshakeLine(formatHandshakeLine(h), offered), h);
    }),
  );
});

test('property: arbitrary lines never make the parser throw anything but GatehouseError', (t) => {
  const piece = fc.oneof(
    fc.constantFrom('1', '2', 'unix', 'tcp', 'grpc', 'netrpc', '/tmp/p', '127.0.0.1:1234', '[::1]:80', 'true', ''),
    fc.constant('CERT'),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.base64String({ maxLength: 400 }),
  );
  const line = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.array(piece, { minLength: 3, maxLength: 8 }).map((pieces) => pieces.join('|')),
  );
  let parsed = 0;
  fc.assert(
    fc.property(line, (text) => {
      const withCert = text.replace('CERT', encodeCertificateField(certificate()));
      try {
        parseHandshakeLine(withCert, OFFERED);
        parsed += 1;
      } catch (error) {
        t.true(error instanceof GatehouseError, String(error));
      }
    }),
    { numRuns: 2000 },
  );
  t.pass(`${parsed} generated lines were valid`);
});

test('property: a five-field line means exactly what it means with an empty certificate field', (t) => {
  const piece = fc.oneof(
    fc.constantFrom('1', '2', 'unix', 'tcp', 'grpc', 'netrpc', '/tmp/p', '127.0.0.1:1234', '[::1]:80', ''),
    // Without "|" (it would make another field) and "\r" (tolerated only at the very end).
    fc.string({ unit: 'binary', maxLength: 40 }).filter((text) => !/[|\r]/.test(text)),
  );
  const outcome = (line: string): unknown => {
    try {
      return parseHandshakeLine(line, OFFERED);
    } catch (error) {
      return error instanceof GatehouseError ? error.code : error;
    }
  };
  fc.assert(
    fc.property(fc.array(piece, { minLength: 5, maxLength: 5 }), (pieces) => {
      t.deepEqual(outcome(pieces.join('|')), outcome(`${pieces.join('|')}|`));
    }),
    { numRuns: 1000 },
  );
});

test('the worst-case line the parser will look at is handled quickly', (t) => {
  const start = process.hrtime.bigint();
  for (const filler of ['|', 'A', ':', '[', 'é']) {
    const line = `1|1|tcp|${filler.repeat(MAX_HANDSHAKE_LINE_BYTES / Buffer.byteLength(filler) - 20)}|grpc|`;
    t.throws(() => parseHandshakeLine(line, OFFERED), { instanceOf: GatehouseError });
  }
  // Generous for a loaded machine: the failure this catches is a backtracking parse that hangs.
  t.true(Number(process.hrtime.bigint() - start) / 1e6 < 20_000);
});

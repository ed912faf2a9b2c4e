import test from 'ava';
import fc from 'fast-check';
import crypto from 'node:crypto';
import { GatehouseError, type GatehouseErrorCode } from '../../src/errors.js';
import { generateEphemeralIdentity } from '../../src/tls/certificate.js';
import {
  buildPluginEnv,
  formatProtocolVersions,
  parseProtocolVersions,
  PLUGIN_CLIENT_CERT,
  PLUGIN_MAX_PORT,
  PLUGIN_MIN_PORT,
  PLUGIN_MULTIPLEX_GRPC,
  PLUGIN_PROTOCOL_VERSIONS,
  PLUGIN_UNIX_SOCKET_DIR,
  PLUGIN_UNIX_SOCKET_GROUP,
  readPluginEnv,
  validateCookie,
  type MagicCookie,
  type PluginEnvContract,
} from '../../src/transport/env.js';


const COOKIE: MagicCookie = { key: 'KV_PLUGIN', value: 'hello-4f1c2b' };

let certificatePem = '';
test.before(async () => {
  const { certificateDer } = generateEphemeralIdentity();
  // Node's PEM form, which is what readPluginEnv hands back.
  certificatePem = new crypto.X509Certificate(certificateDer).toString();
});

const privateKeyPem = (type: 'pkcs8' | 'sec1'): string =>
  crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type, format: 'pem' }).toString();

function fails(t: import('ava').ExecutionContext, run: () => unknown, code: GatehouseErrorCode) {
  const error = t.throws(run, { instanceOf: GatehouseError });
  t.is(error?.code, code, error?.message);
  return error;
}

/** What a host built with buildPluginEnv hands the plugin, with `changes` applied. */
function hostEnv(changes: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { ...buildPluginEnv({ cookie: COOKIE, protocolVersions: [1, 2] }), ...changes };
}

// ---- host side -------------------------------------------------------------------------------------

test('buildPluginEnv sets the cookie, the offered versions and go-plugin\'s default port range', (t) => {
  t.deepEqual(buildPluginEnv({ cookie: COOKIE, protocolVersions: [2, 1] }), {
    KV_PLUGIN: COOKIE.value,
    [PLUGIN_MIN_PORT]: '10000',
    [PLUGIN_MAX_PORT]: '25000',
    [PLUGIN_PROTOCOL_VERSIONS]: '2,1',
  });
});

test('buildPluginEnv adds the certificate, socket directory and multiplexing only when asked', (t) => {
  const env = buildPluginEnv({
    cookie: COOKIE,
    protocolVersions: [1],
    clientCertificatePem: certificatePem,
    minPort: 0,
    maxPort: 0,
    unixSocketDir: '/run/gatehouse',
    multiplexGrpc: true,
  });
  t.is(env[PLUGIN_CLIENT_CERT], certificatePem);
  t.is(env[PLUGIN_UNIX_SOCKET_DIR], '/run/gatehouse');
  t.is(env[PLUGIN_MULTIPLEX_GRPC], 'true');
  t.is(env[PLUGIN_MIN_PORT], '0');
  t.false(PLUGIN_MULTIPLEX_GRPC in buildPluginEnv({ cookie: COOKIE, protocolVersions: [1], multiplexGrpc: false }));
});

test('buildPluginEnv passes the caller\'s variables and nothing from the host\'s own environment', (t) => {
  const env = buildPluginEnv({ cookie: COOKIE, protocolVersions: [1] }, { LANG: 'C.UTF-8' });
  t.is(env.LANG, 'C.UTF-8');
  t.false('PATH' in env);
  t.is(Object.keys(env).length, 5);
});

test('the caller\'s env may not set the cookie or any PLUGIN_ variable: INVALID_OPTIONS', (t) => {
  for (const name of [COOKIE.key, 'kv_plugin', PLUGIN_CLIENT_CERT, PLUGIN_UNIX_SOCKET_GROUP, 'plugin_min_port', 'PLUGIN_ANYTHING']) {
    fails(t, () => buildPluginEnv({ cookie: COOKIE, protocolVersions: [1] }, { [name]: 'x' }), 'INVALID_OPTIONS');
  }
});

test('the caller\'s env may not hold names with "=" or NUL, or values with NUL: INVALID_OPTIONS', (t) => {
  const bad: Record<string, string>[] = [{ 'A=B': 'x' }, { '': 'x' }, { 'A\0': 'x' }, { A: 'x\0y' }, { A: 7 as unknown as string }];
  for (const env of bad) {
    fails(t, () => buildPluginEnv({ cookie: COOKIE, protocolVersions: [1] }, env), 'INVALID_OPTIONS');
  }
});

test('a caller variable named "__proto__" stays a variable', (t) => {
  const callerEnv = JSON.parse('{"__proto__":"x"}') as Record<string, string>;
  const env = buildPluginEnv({ cookie: COOKIE, protocolVersions: [1] }, callerEnv);
  t.true(Object.hasOwn(env, '__proto__'));
  t.is(Object.getPrototypeOf(env), Object.prototype);
});

test('buildPluginEnv refuses bad versions, ports, socket directories and certificates: INVALID_OPTIONS', (t) => {
  const bad: Partial<PluginEnvContract>[] = [
    { protocolVersions: [] },
    { protocolVersions: [0] },
    { protocolVersions: [1, 1] },
    { minPort: -1 },
    { maxPort: 65536 },
    { minPort: 2000, maxPort: 1000 },
    { minPort: 1.5 },
    { unixSocketDir: 'relative/dir' },
    { unixSocketDir: '/tmp/a\0b' },
    { clientCertificatePem: 'not a certificate' },
  ];
  for (const change of bad) {
    fails(t, () => buildPluginEnv({ cookie: COOKIE, protocolVersions: [1], ...change }), 'INVALID_OPTIONS');
  }
});

test('buildPluginEnv refuses to hand a private key to the plugin', (t) => {
  const error = fails(
    t,
    () => buildPluginEnv({ cookie: COOKIE, protocolVersions: [1], clientCertificatePem: certificatePem + privateKeyPem('pkcs8') }),
    'INVALID_OPTIONS',
  );
  t.regex(error?.message ?? '', /private key/);
});

test('validateCookie accepts an environment-variable name and a plain value', (t) => {
  t.notThrows(() => validateCookie(COOKIE));
  t.notThrows(() => validateCookie({ key: '_A1', value: 'v=with=equals' }));
});

test('validateCookie refuses bad keys and values with INVALID_OPTIONS', (t) => {
  const bad: MagicCookie[] = [
    { key: '', value: 'v' },
    { key: '1ABC', value: 'v' },
    { key: 'A-B', value: 'v' },
    { key: 'A=B', value: 'v' },
    { key: 'PLUGIN_COOKIE', value: 'v' },
    { key: 'plugin_cookie', value: 'v' },
    { key: 'A'.repeat(129), value: 'v' },
    { key: 'COOKIE', value: '' },
    { key: 'COOKIE', value: 'a\nb' },
    { key: 'COOKIE', value: 'a\rb' },
    { key: 'COOKIE', value: 'a\0b' },
    { key: 'COOKIE', value: 'v'.repeat(1025) },
  ];
  for (const cookie of bad) fails(t, () => validateCookie(cookie), 'INVALID_OPTIONS');
});

// ---- plugin side -----------------------------------------------------------------------------------

test('readPluginEnv reads back what buildPluginEnv wrote', (t) => {
  const contract: PluginEnvContract = {
    cookie: COOKIE,
    protocolVersions: [3, 1],
    clientCertificatePem: certificatePem,
    minPort: 20000,
    maxPort: 20010,
    unixSocketDir: '/run/gatehouse',
    multiplexGrpc: true,
  };
  t.deepEqual(readPluginEnv(buildPluginEnv(contract), COOKIE), {
    protocolVersions: [3, 1],
    clientCertificatePem: certificatePem,
    minPort: 20000,
    maxPort: 20010,
    unixSocketDir: '/run/gatehouse',
    multiplexGrpc: true,
  });
});

test('readPluginEnv reads a go-plugin host\'s environment (cookie, ports, versions, nothing else)', (t) => {
  const env = { KV_PLUGIN: COOKIE.value, PLUGIN_MIN_PORT: '10000', PLUGIN_MAX_PORT: '25000', PLUGIN_PROTOCOL_VERSIONS: '1' };
  t.deepEqual(readPluginEnv(env, COOKIE), { protocolVersions: [1], minPort: 10000, maxPort: 25000, multiplexGrpc: false });
});

test('a missing cookie is COOKIE_MISMATCH naming the variable', (t) => {
  const error = fails(t, () => readPluginEnv(hostEnv({ KV_PLUGIN: undefined }), COOKIE), 'COOKIE_MISMATCH');
  t.true(error?.message.includes('KV_PLUGIN'));
  fails(t, () => readPluginEnv(hostEnv({ KV_PLUGIN: '' }), COOKIE), 'COOKIE_MISMATCH');
});

test('a wrong cookie is COOKIE_MISMATCH and the message never echoes either value', (t) => {
  const error = fails(t, () => readPluginEnv(hostEnv({ KV_PLUGIN: 'some-other-value' }), COOKIE), 'COOKIE_MISMATCH');
  t.true(error?.message.includes('KV_PLUGIN'));
  t.false(error?.message.includes('some-other-value'));
  t.false(error?.message.includes(COOKIE.value));
  fails(t, () => readPluginEnv(hostEnv({ KV_PLUGIN: `${COOKIE.value}x` }), COOKIE), 'COOKIE_MISMATCH');
  fails(t, () => readPluginEnv(hostEnv({ KV_PLUGIN: COOKIE.value.slice(0, -1) }), COOKIE), 'COOKIE_MISMATCH');
});

test('an inherited property is not a cookie', (t) => {
  const env = Object.create({ KV_PLUGIN: COOKIE.value }) as Record<string, string>;
  Object.assign(env, { PLUGIN_PROTOCOL_VERSIONS: '1' });
  fails(t, () => readPluginEnv(env, COOKIE), 'COOKIE_MISMATCH');
});

test('a missing PLUGIN_PROTOCOL_VERSIONS is ENV_INVALID naming it, and saying the host sets it', (t) => {
  const error = fails(t, () => readPluginEnv(hostEnv({ PLUGIN_PROTOCOL_VERSIONS: undefined }), COOKIE), 'ENV_INVALID');
  t.true(error?.message.includes(PLUGIN_PROTOCOL_VERSIONS));
  t.regex(error?.message ?? '', /host sets it.*gatehouse call/);
});

test('ports must be integers from 0 to 65535, else ENV_INVALID naming the variable', (t) => {
  for (const value of ['-1', '65536', '1.5', '0x10', '010', ' 1', 'abc', '99999999999999999999']) {
    for (const name of [PLUGIN_MIN_PORT, PLUGIN_MAX_PORT]) {
      const error = fails(t, () => readPluginEnv(hostEnv({ [name]: value }), COOKIE), 'ENV_INVALID');
      t.true(error?.message.includes(name));
    }
  }
});

test('a missing or empty port falls back to go-plugin\'s default', (t) => {
  const env = readPluginEnv(hostEnv({ PLUGIN_MIN_PORT: undefined, PLUGIN_MAX_PORT: '' }), COOKIE);
  t.is(env.minPort, 10000);
  t.is(env.maxPort, 25000);
});

test('PLUGIN_MIN_PORT above PLUGIN_MAX_PORT is ENV_INVALID', (t) => {
  fails(t, () => readPluginEnv(hostEnv({ PLUGIN_MIN_PORT: '2', PLUGIN_MAX_PORT: '1' }), COOKIE), 'ENV_INVALID');
});

test('a PLUGIN_CLIENT_CERT holding a private key is ENV_INVALID: the host must never hand over a key', (t) => {
  for (const pem of [certificatePem + privateKeyPem('pkcs8'), privateKeyPem('sec1') + certificatePem, privateKeyPem('pkcs8')]) {
    const error = fails(t, () => readPluginEnv(hostEnv({ PLUGIN_CLIENT_CERT: pem }), COOKIE), 'ENV_INVALID');
    t.regex(error?.message ?? '', /private key/);
  }
});

test('a PLUGIN_CLIENT_CERT that is not exactly one parsing CERTIFICATE block is ENV_INVALID, not echoed', (t) => {
  const body = certificatePem.split('\n').slice(1, -2).join('\n');
  const bad = [
    certificatePem + certificatePem,
    certificatePem.replace(/CERTIFICATE/g, 'PUBLIC KEY'),
    certificatePem.replace('MI', 'MJ'),
    certificatePem.replace(/\n-----END/, '!\n-----END'),
    body,
    `-----BEGIN CERTIFICATE-----\n${Buffer.from('junk junk junk').toString('base64')}\n-----END CERTIFICATE-----\n`,
    'x'.repeat(20_000),
  ];
  for (const pem of bad) {
    const error = fails(t, () => readPluginEnv(hostEnv({ PLUGIN_CLIENT_CERT: pem }), COOKIE), 'ENV_INVALID');
    t.true(error?.message.includes(PLUGIN_CLIENT_CERT));
    t.false(error?.message.includes(body.slice(0, 20)));
  }
});

test('PLUGIN_CLIENT_CERT with CRLF line ends or surrounding blank lines is accepted', (t) => {
  const env = readPluginEnv(hostEnv({ PLUGIN_CLIENT_CERT: `\n${certificatePem.replace(/\n/g, '\r\n')}\n` }), COOKIE);
  t.is(env.clientCertificatePem, certificatePem);
});

test('a relative PLUGIN_UNIX_SOCKET_DIR is ENV_INVALID', (t) => {
  for (const dir of ['run/gatehouse', './x', 'C:\\temp']) {
    const error = fails(t, () => readPluginEnv(hostEnv({ PLUGIN_UNIX_SOCKET_DIR: dir }), COOKIE), 'ENV_INVALID');
    t.true(error?.message.includes(PLUGIN_UNIX_SOCKET_DIR));
  }
});

test('PLUGIN_MULTIPLEX_GRPC is read like Go\'s strconv.ParseBool', (t) => {
  for (const value of ['1', 't', 'T', 'TRUE', 'true', 'True']) {
    t.true(readPluginEnv(hostEnv({ PLUGIN_MULTIPLEX_GRPC: value }), COOKIE).multiplexGrpc, value);
  }
  for (const value of ['0', 'f', 'F', 'FALSE', 'false', 'False']) {
    t.false(readPluginEnv(hostEnv({ PLUGIN_MULTIPLEX_GRPC: value }), COOKIE).multiplexGrpc, value);
  }
  t.false(readPluginEnv(hostEnv(), COOKIE).multiplexGrpc);
});

test('any other PLUGIN_MULTIPLEX_GRPC is ENV_INVALID', (t) => {
  for (const value of ['yes', 'on', 'tRUE', ' true', '2']) {
    fails(t, () => readPluginEnv(hostEnv({ PLUGIN_MULTIPLEX_GRPC: value }), COOKIE), 'ENV_INVALID');
  }
});

test('readPluginEnv refuses a bad cookie configuration with INVALID_OPTIONS', (t) => {
  fails(t, () => readPluginEnv(hostEnv(), { key: 'PLUGIN_X', value: 'v' }), 'INVALID_OPTIONS');
});

// ---- protocol version lists ------------------------------------------------------------------------

test('protocol versions are formatted as go-plugin does: "1,2"', (t) => {
  t.is(formatProtocolVersions([1, 2]), '1,2');
  t.deepEqual(parseProtocolVersions('1,2'), [1, 2]);
  t.deepEqual(parseProtocolVersions('5'), [5]);
});

test('parseProtocolVersions is strict: positive integers only, no spaces, signs, blanks or repeats', (t) => {
  const bad = ['', ',', '1,', ',1', '1,,2', '1, 2', ' 1', '0', '-1', '+1', '01', '1.0', '1e3', '0x1', '1,1', '1234567890'];
  for (const value of bad) {
    const error = fails(t, () => parseProtocolVersions(value), 'ENV_INVALID');
    t.true(error?.message.includes(PLUGIN_PROTOCOL_VERSIONS));
  }
});

test('parseProtocolVersions bounds the count and the length', (t) => {
  const many = Array.from({ length: 65 }, (_, i) => i + 1).join(',');
  fails(t, () => parseProtocolVersions(many), 'ENV_INVALID');
  fails(t, () => parseProtocolVersions('1'.repeat(100_000)), 'ENV_INVALID');
  t.is(parseProtocolVersions(Array.from({ length: 64 }, (_, i) => i + 1).join(',')).length, 64);
});

test('formatProtocolVersions refuses lists the plugin side would refuse: INVALID_OPTIONS', (t) => {
  for (const versions of [[], [0], [1, 1], [2.5], [1e12]]) {
    fails(t, () => formatProtocolVersions(versions), 'INVALID_OPTIONS');
  }
});

test('property: format then parse gives back the versions, in order', (t) => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 999_999_999 }), { minLength: 1, maxLength: 64 }), (versions) => {
      t.deepEqual(parseProtocolVersions(formatProtocolVersions(versions)), versions);
    }),
  );
});

test('property: parseProtocolVersions never throws anything but GatehouseError', (t) => {
  const value = fc.oneof(
    fc.string({ unit: 'binary' }),
    fc.array(fc.oneof(fc.nat().map(String), fc.string({ maxLength: 3 })), { maxLength: 70 }).map((a) => a.join(',')),
  );
  fc.assert(
    fc.property(value, (text) => {
      try {
        const versions = parseProtocolVersions(text);
        t.true(versions.length > 0 && versions.every((v) => Number.isInteger(v) && v > 0));
      } catch (error) {
        t.true(error instanceof GatehouseError && error.code === 'ENV_INVALID', String(error));
      }
    }),
  );
});

test('property: round trip of the whole contract through the environment', (t) => {
  const contract = fc.record({
    cookie: fc.record({
      key: fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,20}$/).filter((key) => !key.startsWith('PLUGIN_')),
      value: fc.string({ unit: 'binary', minLength: 1, maxLength: 64 }).filter((v) => !/[\0\r\n]/.test(v)),
    }),
    protocolVersions: fc.uniqueArray(fc.integer({ min: 1, max: 999_999_999 }), { minLength: 1, maxLength: 8 }),
    ports: fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 })),
    unixSocketDir: fc.option(fc.stringMatching(/^\/[a-z0-9/._-]{0,40}$/), { nil: undefined }),
    multiplexGrpc: fc.boolean(),
    withCertificate: fc.boolean(),
  });
  fc.assert(
    fc.property(contract, ({ cookie, protocolVersions, ports, unixSocketDir, multiplexGrpc, withCertificate }) => {
      const [minPort, maxPort] = ports[0] <= ports[1] ? ports : [ports[1], ports[0]];
      const env = buildPluginEnv({
        cookie,
        protocolVersions,
        minPort,
        maxPort,
        multiplexGrpc,
        ...(unixSocketDir === undefined ? {} : { unixSocketDir }),
        ...(withCertificate ? { clientCertificatePem: certificatePem } : {}),
      });
      t.deepEqual(readPluginEnv(env, cookie), {
        protocolVersions,
        minPort,
        maxPort,
        multiplexGrpc,
        ...(unixSocketDir === undefined ? {} : { unixSocketDir }),
        ...(withCertificate ? { clientCertificatePem: certificatePem } : {}),
      });
    }),
    { numRuns: 200 },
  );
});

test('property: arbitrary environments never make readPluginEnv throw anything but GatehouseError', (t) => {
  const name = fc.constantFrom(
    COOKIE.key,
    PLUGIN_PROTOCOL_VERSIONS,
    PLUGIN_MIN_PORT,
    PLUGIN_MAX_PORT,
    PLUGIN_CLIENT_CERT,
    PLUGIN_UNIX_SOCKET_DIR,
    PLUGIN_MULTIPLEX_GRPC,
    '__proto__',
  );
  const value = fc.oneof(
    fc.string({ unit: 'binary' }),
    fc.constantFrom(COOKIE.value, '1,2', '0', '65535', 'true', '/tmp', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----'),
    fc.constant('CERT'),
  );
  fc.assert(
    fc.property(fc.dictionary(name, value), (env) => {
      const withCertificate = Object.fromEntries(
        Object.entries(env).map(([k, v]) => [k, v === 'CERT' ? certificatePem : v]),
      );
      try {
        readPluginEnv(withCertificate, COOKIE);
      } catch (error) {
        t.true(error instanceof GatehouseError, String(error));
        if (error instanceof GatehouseError && error.code === 'COOKIE_MISMATCH') {
          t.false(error.message.includes(COOKIE.value));
        }
      }
    }),
    { numRuns: 1000 },
  );
});

test('PLUGIN_UNIX_SOCKET_GROUP: a gid below 2^32 - 1 or a group name goes through both ways; anything else is refused', (t) => {
  for (const group of ['0', '65534', '4294967294', 'nogroup', 'plugin-users', '_daemon']) {
    const env = buildPluginEnv({ cookie: COOKIE, protocolVersions: [1], unixSocketGroup: group });
    t.is(env[PLUGIN_UNIX_SOCKET_GROUP], group);
    t.is(readPluginEnv(hostEnv({ [PLUGIN_UNIX_SOCKET_GROUP]: group }), COOKIE).unixSocketGroup, group);
  }
  t.is(readPluginEnv(hostEnv(), COOKIE).unixSocketGroup, undefined);
  // The value reaches a file lookup and a chown: no paths, separators or option-like text.
  // 4294967295 is (gid_t)-1, which chown takes for "leave the group as it is": the socket would be shared with
  // whatever group the plugin's user has, not one the host named. Larger ones fail later, untyped.
  for (const bad of ['../etc', 'a b', '-1', 'g:x', 'x'.repeat(40), '1'.repeat(11), '4294967295', '9999999999']) {
    fails(t, () => buildPluginEnv({ cookie: COOKIE, protocolVersions: [1], unixSocketGroup: bad }), 'INVALID_OPTIONS');
    fails(t, () => readPluginEnv(hostEnv({ [PLUGIN_UNIX_SOCKET_GROUP]: bad }), COOKIE), 'ENV_INVALID');
  }
});

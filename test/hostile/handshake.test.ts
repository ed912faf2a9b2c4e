// Hostile and broken handshakes: each is refused with its own code, at once (the start timeout is set
// far beyond the bound, so a refusal that waited for it would fail), leaves no process or directory
// behind, and the host launches a good plugin right after.
import test from 'ava';
import { launch } from '../../src/index.js';
import { generateEphemeralIdentity } from '../../src/tls/certificate.js';
import { encodeCertificateField, MAX_HANDSHAKE_LINE_BYTES } from '../../src/transport/handshake.js';
import { waitUntil } from '../helpers/process.js';
import { AT_ONCE_MS, expectRefusal, fake, hostStillWorks, kvService, privateTmpdir } from './harness.js';

privateTmpdir(test);

const certificate = encodeCertificateField(generateEphemeralIdentity().certificateDer);
/** A line that would be accepted if only `field` were not as it is. */
const valid = (overrides: Partial<Record<'core' | 'app' | 'network' | 'address' | 'protocol' | 'cert', string>> = {}): string =>
  [
    overrides.core ?? '1',
    overrides.app ?? '1',
    overrides.network ?? 'unix',
    overrides.address ?? '/tmp/gatehouse-hostile-nowhere.sock',
    overrides.protocol ?? 'grpc',
    overrides.cert ?? certificate,
  ].join('|');

/** Whether `text` holds a control character a plugin could use to forge log lines or drive a terminal. */
const hasControl = (text: string): boolean => [...text].some((c) => c.charCodeAt(0) < 0x20 || c === '\u007f');

const lines: Array<[title: string, line: string, code: Parameters<typeof expectRefusal>[2]]> = [
  ['an empty line', '', 'HANDSHAKE_INVALID'],
  ['too few fields', '1|1|unix', 'HANDSHAKE_INVALID'],
  // Attack: a downgrade to plaintext through go-plugin's short five-field line, which carries no certificate.
  ['a five-field plaintext line (as go-plugin teaches other languages) without insecurePlaintext', '1|1|tcp|127.0.0.1:1234|grpc', 'PLAINTEXT_REFUSED'],
  ['too many fields', `${valid()}|true|extra`, 'HANDSHAKE_INVALID'],
  ['a wrong core version', valid({ core: '2' }), 'CORE_VERSION_MISMATCH'],
  ['an application version the host did not offer', valid({ app: '7' }), 'PROTOCOL_VERSION_MISMATCH'],
  ['an unknown network', valid({ network: 'udp' }), 'NETWORK_UNSUPPORTED'],
  ['an unknown protocol', valid({ protocol: 'http2' }), 'HANDSHAKE_INVALID'],
  ['a host name for a TCP address (no DNS lookup)', valid({ network: 'tcp', address: 'localhost.example:4000' }), 'HANDSHAKE_INVALID'],
  ['a certificate that is not base64', valid({ cert: 'MIIB$$not*base64' }), 'CERTIFICATE_INVALID'],
  ['a padded certificate field', valid({ cert: certificate + '==' }), 'CERTIFICATE_INVALID'],
  ['base64 of bytes that are not a certificate', valid({ cert: Buffer.from([0x30, 0x82, 0x01, 0x00, 1, 2, 3]).toString('base64').replace(/=+$/, '') }), 'CERTIFICATE_INVALID'],
  ['a certificate with trailing bytes', valid({ cert: encodeCertificateField(Buffer.concat([Buffer.from(certificate, 'base64'), Buffer.from([0])])) }), 'CERTIFICATE_INVALID'],
  // Attack: a TLS plugin steering the host's client at another local service (ssh here).
  ['a TLS plugin naming a TCP port below PLUGIN_MIN_PORT', valid({ network: 'tcp', address: '127.0.0.1:22' }), 'PORT_OUT_OF_RANGE'],
  ['a TLS plugin naming a TCP port above PLUGIN_MAX_PORT', valid({ network: 'tcp', address: '[::1]:25001' }), 'PORT_OUT_OF_RANGE'],
];

for (const [title, line, code] of lines) {
  test(`handshake: ${title} is ${code}`, async (t) => {
    await expectRefusal(t, fake('line', { FAKE_LINE: line }), code);
    await hostStillWorks(t);
  });
}

test('handshake: binary garbage is HANDSHAKE_INVALID, and the message quotes it with every control character escaped', async (t) => {
  const { error } = await expectRefusal(t, fake('garbage'), 'HANDSHAKE_INVALID');
  // Attack: a plugin writing terminal escapes or fake lines into the host's logs through an error message.
  t.false(hasControl(error.message), JSON.stringify(error.message));
  t.regex(error.message, /\\u001b\[2J/);
  await hostStillWorks(t);
});

test('handshake: an endless line without a newline is HANDSHAKE_TOO_LONG as soon as it passes the limit', async (t) => {
  const { error } = await expectRefusal(t, fake('endless-line'), 'HANDSHAKE_TOO_LONG');
  t.regex(error.message, new RegExp(String(MAX_HANDSHAKE_LINE_BYTES)));
  await hostStillWorks(t);
});

test('handshake: a plugin that never prints one is START_TIMEOUT after the start timeout, not later', async (t) => {
  const { ms } = await expectRefusal(t, fake('silent', {}, { startTimeoutMs: 500 }), 'START_TIMEOUT');
  t.true(ms >= 500, `gave up after ${ms} ms, before the start timeout`);
  await hostStillWorks(t);
});

test('handshake: a plugin that exits before it is PLUGIN_EXITED with its exit code', async (t) => {
  const { error } = await expectRefusal(t, fake('exit-early'), 'PLUGIN_EXITED');
  t.deepEqual(error.details.exitStatus, { code: 3, signal: null });
  await hostStillWorks(t);
});

test('handshake: a line printed before the handshake is refused; the host does not look for a later one', async (t) => {
  const { error } = await expectRefusal(t, fake('banner-then-handshake'), 'HANDSHAKE_INVALID');
  t.regex(error.message, /starting kv plugin/);
  await hostStillWorks(t);
});

test('handshake: a second handshake line cannot re-pin the connection; it is only stdout', async (t) => {
  // Attack: a plugin announcing another socket and certificate once the host has connected.
  const other = generateEphemeralIdentity();
  const second = valid({ address: '/tmp/gatehouse-hostile-elsewhere.sock', cert: encodeCertificateField(other.certificateDer) });
  const stdout: string[] = [];
  const started = Date.now();
  const plugin = await launch(fake('handshake-twice', { FAKE_LINE: second }, { onStdoutLine: (line) => stdout.push(line) }));
  t.true(Date.now() - started < AT_ONCE_MS);
  t.true(plugin.address.startsWith(plugin.socketDir + '/'), 'the first line was used');
  t.is((await plugin.client(kvService).Get({ key: 'FAKE_MODE' })).value.toString(), 'handshake-twice');
  t.true(await waitUntil(() => stdout.length > 0, AT_ONCE_MS));
  t.deepEqual(stdout, [second], 'the second line reached the stdout handler and nothing else');
  t.deepEqual(await plugin.kill(), { code: 0, signal: null });
  await hostStillWorks(t);
});

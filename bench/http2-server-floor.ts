// The floor under any Node.js plugin's start that serves gRPC over AutoMTLS (issue 14), started like the
// others (bench/plugin-start.ts): the least such a plugin must do before its handshake line, with no gRPC
// library at all. It reads the host's certificate from the environment, makes its own identity, opens a
// node:http2 server for the host's certificate on a unix socket and prints its line. It answers
// nothing; the bench bundles it as it bundles the recommended plugin, and kills it after the line.
import { createSecureServer } from 'node:http2';
import { join } from 'node:path';
import { generateEphemeralIdentity } from '../src/tls/certificate.js';
import { formatHandshakeLine } from '../src/transport/handshake.js';

const socketDir = process.env.PLUGIN_UNIX_SOCKET_DIR;
if (process.env.PLUGIN_CLIENT_CERT === undefined || socketDir === undefined) throw new Error('run by the bench with a host environment');
const own = generateEphemeralIdentity();
// An empty trust store, as serve()'s pinnedTlsServer has: the pin on the host's exact certificate replaces
// the chain check there, and a context given a CA makes Node 20 build its root-certificate store first. The
// floor answers nothing, so the check itself (a comparison of two buffers per connection) is left out.
const server = createSecureServer({ key: own.privateKeyPem, cert: own.certificatePem, ca: [], requestCert: true, rejectUnauthorized: false });
const address = join(socketDir, `server-floor-${process.pid}.sock`);
server.listen(address, () => {
  process.stdout.write(formatHandshakeLine({ appVersion: 1, network: 'unix', address, serverCertificate: own.certificateDer }) + '\n');
});

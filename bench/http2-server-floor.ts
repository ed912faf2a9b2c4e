// The floor under any Node.js plugin's start that serves gRPC over AutoMTLS (issue 14), started like the
// others (bench/plugin-start.ts): the least such a plugin must do before its handshake line, with no gRPC
// library at all. It reads the host's certificate from the environment, makes its own identity, opens a
// node:http2 server pinned to the host's certificate on a unix socket and prints its line. It answers
// nothing; the bench bundles it as it bundles the recommended plugin, and kills it after the line.
import { createSecureServer } from 'node:http2';
import { join } from 'node:path';
import { generateEphemeralIdentity } from '../src/tls/certificate.js';
import { formatHandshakeLine } from '../src/transport/handshake.js';

const hostCertificate = process.env.PLUGIN_CLIENT_CERT;
const socketDir = process.env.PLUGIN_UNIX_SOCKET_DIR;
if (hostCertificate === undefined || socketDir === undefined) throw new Error('run by the bench with a host environment');
const own = generateEphemeralIdentity();
const server = createSecureServer({ key: own.privateKeyPem, cert: own.certificatePem, ca: hostCertificate, requestCert: true, rejectUnauthorized: true });
const address = join(socketDir, `server-floor-${process.pid}.sock`);
server.listen(address, () => {
  process.stdout.write(formatHandshakeLine({ appVersion: 1, network: 'unix', address, serverCertificate: own.certificateDer }) + '\n');
});

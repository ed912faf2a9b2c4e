"""The KV plugin of kv_plugin.py with go-plugin's AutoMTLS, as gatehouse hosts require (docs/other-languages.md).

What changes from the plaintext plugin: read the host's certificate (PEM) from PLUGIN_CLIENT_CERT, make
a certificate of our own, serve TLS requiring exactly the host's client certificate, listen on a unix
socket in PLUGIN_UNIX_SOCKET_DIR, and print our certificate as the sixth field of the handshake line:
base64 of its DER, without "=" padding. Logs are hclog JSON lines on stderr, so the host sees levels.
Needs Debian's python3-grpcio and python3-cryptography.
"""

import base64
import datetime
import json
import os
import signal
import sys

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kv_plugin import COOKIE_KEY, COOKIE_VALUE, Plugin, kv_server


def log(level, message, **fields):
    """One hclog JSON record: the host logs it at its level, with its fields."""
    record = {"@level": level, "@message": message, "@timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    sys.stderr.write(json.dumps({**record, **fields}) + "\n")
    sys.stderr.flush()


def own_certificate():
    """A fresh P-256 key and a self-signed certificate for localhost, shaped like go-plugin's."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30)).not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return certificate, key_pem


def main():
    if os.environ.get(COOKIE_KEY) != COOKIE_VALUE:
        sys.stderr.write("This binary is a plugin. These are not meant to be executed directly.\n")
        sys.exit(1)
    host_certificate = os.environ["PLUGIN_CLIENT_CERT"].encode()  # PEM; absent means the host asked for no TLS
    certificate, key_pem = own_certificate()
    credentials = grpc.ssl_server_credentials(
        [(key_pem, certificate.public_bytes(serialization.Encoding.PEM))],
        root_certificates=host_certificate,  # the only client certificate accepted
        require_client_auth=True,
    )
    plugin = Plugin()
    server = kv_server(plugin)
    socket_path = os.path.join(os.environ["PLUGIN_UNIX_SOCKET_DIR"], "plugin.sock")
    if server.add_secure_port("unix:" + socket_path, credentials) == 0:
        log("error", "cannot listen", path=socket_path)
        sys.exit(1)
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: plugin.stop.set())
    der = certificate.public_bytes(serialization.Encoding.DER)
    sys.stdout.write("1|1|unix|%s|grpc|%s\n" % (socket_path, base64.b64encode(der).decode().rstrip("=")))
    sys.stdout.flush()
    log("info", "kv plugin serving", path=socket_path)
    plugin.stop.wait()
    server.stop(1).wait()
    sys.exit(0)


if __name__ == "__main__":
    main()

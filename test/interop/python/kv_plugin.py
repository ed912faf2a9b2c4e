"""The KV plugin of examples/kv, written as go-plugin's docs teach plugins in languages other than Go.

It checks the magic cookie, serves kv.KV, grpc.health.v1.Health (service "plugin" is SERVING) and
plugin.GRPCController/Shutdown in plaintext on a fixed loopback port, and prints go-plugin's five-field
handshake line `1|1|tcp|127.0.0.1:PORT|grpc`. Needs only Debian's python3-grpcio: the messages are
hand-encoded (grpcio-tools and grpcio-health-checking are not packaged), as they are tiny.

The port is KV_PLUGIN_PORT (default 1234, as in go-plugin's Python example): a test picks a free one.
"""

import os
import signal
import sys
import threading
from concurrent import futures

import grpc

COOKIE_KEY = "GATEHOUSE_KV_PLUGIN"
COOKIE_VALUE = "d41f0b3c-kv"

# Proto3 wire format, only what these messages use: length-delimited fields (2) and varints (0).
MAX_FIELD_BYTES = 1 << 20


def read_varint(data, offset):
    value, shift = 0, 0
    while True:
        if offset >= len(data) or shift > 63:
            raise ValueError("truncated or oversized varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, offset
        shift += 7


def decode_fields(data):
    """Field number -> bytes of its last length-delimited occurrence; other wire types are skipped."""
    fields, offset = {}, 0
    while offset < len(data):
        key, offset = read_varint(data, offset)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, offset = read_varint(data, offset)
        elif wire_type == 2:
            length, offset = read_varint(data, offset)
            if length > MAX_FIELD_BYTES or offset + length > len(data):
                raise ValueError("field longer than the message or the limit")
            fields[number] = data[offset:offset + length]
            offset += length
        else:
            raise ValueError("unexpected wire type %d" % wire_type)
    return fields


def encode_varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_bytes_field(number, value):
    return encode_varint(number << 3 | 2) + encode_varint(len(value)) + value if value else b""


def identity(data):
    return data


class Plugin:
    def __init__(self):
        self.store = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def get(self, request, _context):
        key = decode_fields(request).get(1, b"").decode("utf-8")
        with self.lock:
            value = self.store.get(key, b"")
        return encode_bytes_field(1, value)

    def put(self, request, _context):
        fields = decode_fields(request)
        with self.lock:
            self.store[fields.get(1, b"").decode("utf-8")] = fields.get(2, b"")
        return b""

    def health_check(self, request, context):
        service = decode_fields(request).get(1, b"").decode("utf-8")
        if service not in ("", "plugin"):
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return bytes([0x08, 0x01])  # HealthCheckResponse{status: SERVING}

    def shutdown(self, _request, _context):
        # Answered first; the main thread then stops the server and exits 0, as a go-plugin plugin does.
        self.stop.set()
        return b""


def unary(handler):
    return grpc.unary_unary_rpc_method_handler(handler, request_deserializer=identity, response_serializer=identity)


def kv_server(plugin):
    """A gRPC server with the plugin's KV service, the health service go-plugin checks and its controller."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("kv.KV", {"Get": unary(plugin.get), "Put": unary(plugin.put)}),
        grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": unary(plugin.health_check)}),
        grpc.method_handlers_generic_handler("plugin.GRPCController", {"Shutdown": unary(plugin.shutdown)}),
    ))
    return server


def main():
    if os.environ.get(COOKIE_KEY) != COOKIE_VALUE:
        sys.stderr.write(
            "This binary is a plugin. These are not meant to be executed directly.\n"
            "Please execute the program that consumes these plugins, which will\n"
            "load any plugins automatically\n"
        )
        sys.exit(1)
    port = int(os.environ.get("KV_PLUGIN_PORT", "1234"))
    plugin = Plugin()
    server = kv_server(plugin)
    # Loopback only: the handshake offers no certificate, so nothing off this machine may reach it.
    if server.add_insecure_port("127.0.0.1:%d" % port) == 0:
        sys.stderr.write("cannot listen on 127.0.0.1:%d\n" % port)
        sys.exit(1)
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: plugin.stop.set())
    sys.stdout.write("1|1|tcp|127.0.0.1:%d|grpc\n" % port)
    sys.stdout.flush()
    sys.stderr.write("kv plugin serving on 127.0.0.1:%d\n" % port)
    sys.stderr.flush()
    plugin.stop.wait()
    server.stop(1).wait()
    sys.exit(0)


if __name__ == "__main__":
    main()

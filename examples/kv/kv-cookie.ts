// The KV example's handshake cookie, in a module of its own: a plugin that imports only this (the
// precompiled example) does not load @grpc/proto-loader and protobufjs with kv.ts.
import type { MagicCookie } from '../../src/plugin/index.js';

/** Host and plugin must agree on this; the Go fixtures under test/interop use the same. */
export const KV_COOKIE: MagicCookie = { key: 'GATEHOUSE_KV_PLUGIN', value: 'd41f0b3c-kv' };

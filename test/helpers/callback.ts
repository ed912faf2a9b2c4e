// The interop tests' broker protocol (test/interop/callback.proto), loaded for TypeScript hosts and plugins.
import { fileURLToPath } from 'node:url';
import type * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type { LaunchOptions, MagicCookie, PluginService } from '../../src/index.js';
import { workerPluginScript } from './paths.js';

/** Shared with the Go fixtures in test/interop/go (brokerhost, brokerplugin). */
export const WORKER_COOKIE: MagicCookie = { key: 'GATEHOUSE_WORKER_PLUGIN', value: '7c1d93e0-worker' };

export const CALLBACK_PROTO = fileURLToPath(new URL('../../../test/interop/callback.proto', import.meta.url));

export interface StorageService extends grpc.ServiceDefinition {
  Put: grpc.MethodDefinition<{ key: string; value: Buffer }, Record<string, never>>;
  Get: grpc.MethodDefinition<{ key: string }, { value: Buffer }>;
}

export interface WorkerService extends grpc.ServiceDefinition {
  Run: grpc.MethodDefinition<{ storage_id: number; key: string; value: Buffer }, { read_back: Buffer }>;
  Offer: grpc.MethodDefinition<Record<string, never>, { storage_id: number }>;
}

export function loadCallbackServices(): { storage: StorageService; worker: WorkerService } {
  const definitions = loadSync(CALLBACK_PROTO, { keepCase: true, defaults: true });
  return {
    storage: definitions['callback.Storage'] as unknown as StorageService,
    worker: definitions['callback.Worker'] as unknown as WorkerService,
  };
}

/** A Storage backed by a Map, for either side to serve; `store` shows what callers wrote. */
export function memoryStorage(definition: StorageService, store = new Map<string, Buffer>()): PluginService {
  return {
    definition,
    implementation: {
      Put: (call: grpc.ServerUnaryCall<{ key: string; value: Buffer }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        store.set(call.request.key, call.request.value);
        callback(null, {});
      },
      Get: (call: grpc.ServerUnaryCall<{ key: string }, unknown>, callback: grpc.sendUnaryData<unknown>) =>
        callback(null, { value: store.get(call.request.key) ?? Buffer.alloc(0) }),
    },
  };
}

/** Launch options for the TypeScript worker plugin (test/fixtures/worker-plugin.ts) with `env`, and `extra`. */
export function workerPlugin(env: Record<string, string> = {}, extra: Partial<LaunchOptions> = {}): LaunchOptions {
  return { command: process.execPath, args: [workerPluginScript], cookie: WORKER_COOKIE, env, ...extra };
}

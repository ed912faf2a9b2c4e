// What every TypeScript engine shares: serving the Engine service, a JSON request/response shape, and
// a client for the storage the server offers over the broker (dialed once per storage id).
import * as grpc from '@grpc/grpc-js';
import { isGatehouseError, serve, type BrokerConnection, type ServedPlugin } from 'gatehouse-plugins/plugin';
import { ENGINE_COOKIE, loadEngineProtocol, type EngineRequest, type EngineResponse } from '../protocol.js';

const { engine, storage } = loadEngineProtocol();

export interface Storage {
  get(key: string): Promise<Buffer | undefined>;
  put(key: string, value: Buffer): Promise<void>;
  /**
   * A read-modify-write of one key: `change` gets its value (undefined: absent) and returns the value to
   * write (none: write nothing) and the result. The value is written only if nothing else wrote the key
   * since it was read; otherwise `change` runs again on the newer value. Every other write succeeded, so
   * this ends. Use it, not get then put, for anything computed from what is stored.
   */
  update<T>(key: string, change: (current: Buffer | undefined) => { value?: Buffer; result: T }): Promise<T>;
  delete(key: string): Promise<void>;
  list(prefix: string): Promise<string[]>;
}

export interface EngineCall {
  operation: string;
  path: string;
  body: unknown;
  storage: Storage;
}

export interface EngineReply {
  status: number;
  body: unknown;
}

/** An engine-level failure with the HTTP status and stable code the server passes on. */
export class EngineError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A write's outcome; the server's refusal of a write past the mount's quota as what the client is told, not "engine error". */
async function withinQuota<T>(write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (error) {
    if (isGatehouseError(error) && error.details.grpcCode === grpc.status.RESOURCE_EXHAUSTED) throw new EngineError(507, 'quota_exceeded', error.message);
    throw error;
  }
}

export async function serveEngine(handle: (call: EngineCall) => Promise<EngineReply>): Promise<ServedPlugin> {
  const connections = new Map<number, Promise<BrokerConnection>>();
  const storageFor = (id: number): Storage => {
    const client = async () => {
      let connection = connections.get(id);
      if (connection === undefined) {
        connection = served.broker.dial(id);
        connections.set(id, connection);
        // A failed dial is not kept: the next request dials again.
        connection.catch(() => connections.delete(id));
      }
      return (await connection).client(storage);
    };
    return {
      get: async (key) => {
        const value = await (await client()).Get({ key });
        return value.found ? value.value : undefined;
      },
      put: async (key, value) => void (await withinQuota((await client()).Put({ key, value }))),
      update: async (key, change) => {
        // Lost update: two processes of this engine serve the mount during a reload, each with its own KeyLock; the
        // old one's read-modify-write of version N and the new one's both wrote N+1. The storage now refuses the second.
        for (;;) {
          const read = await (await client()).Get({ key });
          const { value, result } = change(read.found ? read.value : undefined);
          if (value === undefined) return result;
          if ((await withinQuota((await client()).CompareAndPut({ key, value, revision: read.revision }))).written) return result;
        }
      },
      delete: async (key) => void (await (await client()).Delete({ key })),
      list: async (prefix) => (await (await client()).List({ key: prefix })).keys,
    };
  };
  const Handle: grpc.handleUnaryCall<EngineRequest, EngineResponse> = (call, callback) => {
    const { operation, path, body, storage_id } = call.request;
    const reply = (status: number, value: unknown) => callback(null, { status, body: Buffer.from(JSON.stringify(value)) });
    void (async () => {
      const parsed: unknown = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
      return handle({ operation, path, body: parsed, storage: storageFor(storage_id) });
    })().then(
      (result) => reply(result.status, result.body),
      (error: unknown) =>
        error instanceof EngineError
          ? reply(error.status, { code: error.code, errors: [error.message] })
          : reply(500, { code: 'engine_error', errors: [error instanceof Error ? error.message : String(error)] }),
    );
  };
  const served = await serve({ cookie: ENGINE_COOKIE, versions: { 1: [{ definition: engine, implementation: { Handle } }] } });
  return served;
}

/**
 * Runs the work given for one key one at a time, in the order it arrives; different keys run side by
 * side. Storage.update alone keeps a read-modify-write from being lost; this keeps the requests of one
 * process from retrying against each other, so only another process (during a reload) makes one retry.
 */
export class KeyLock {
  /** The last work queued per key; dropped once it settles with nothing queued behind it. */
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(key) ?? Promise.resolve()).then(work);
    const tail = result.then(
      () => {},
      () => {},
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

/** The body as an object of the given shape, or a 400 naming what is wrong. */
export function objectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new EngineError(400, 'invalid_request', 'the body must be a JSON object');
  return body as Record<string, unknown>;
}

/** Set by the release build (esbuild `define`); "dev" when run unbundled. */
declare const ENGINE_VERSION: string | undefined;
export const engineVersion: string = typeof ENGINE_VERSION === 'string' ? ENGINE_VERSION : 'dev';

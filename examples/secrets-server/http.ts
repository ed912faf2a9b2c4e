// The HTTP/JSON API, Vault-shaped. node:http rather than a framework: the API is a dozen routes on
// loopback, node:http is maintained with Node itself (no extra dependency to vet in a secrets server),
// and every limit that matters here (body size, header timeout, JSON strictness) is set explicitly below.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isGatehouseError, type AuditLog } from 'gatehouse-plugins';
import type { AuditHasher } from './audit-hmac.js';
import { tokenMatches } from './auth.js';
import { ServerError } from './errors.js';
import type { Mounts } from './mounts.js';

export interface ApiOptions {
  mounts: Mounts;
  audit: AuditLog;
  hasher: AuditHasher;
  rootTokenSha256: string;
  maxBodyBytes: number;
  /** The audit log's write failure, once it has had one: every request is then refused. */
  auditFailure: () => Error | undefined;
  /** Told of failures that are not the client's (500 internal), which the response does not explain. */
  onInternalError: (error: unknown) => void;
}

interface Reply {
  status: number;
  body: Buffer | undefined;
  code?: string;
}

/** What a routed request does with its body, once read. */
type Action = (body: Buffer) => Promise<Reply>;

const json = (status: number, value: unknown): Reply => ({ status, body: Buffer.from(JSON.stringify(value)) });

/** The request handler: authenticates, routes, answers in JSON, and audits every request. */
export function apiHandler(options: ApiOptions): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    const answer = async () => {
      const token = request.headers['x-vault-token'];
      // Missing and wrong tokens are one case, and the comparison takes the same time: nothing to probe.
      const authenticated = typeof token === 'string' && tokenMatches(token, options.rootTokenSha256);
      let reply: Reply;
      try {
        reply = await handle(options, request, authenticated);
      } catch (error) {
        reply = failure(options, error);
      }
      // Slot holding: only a request with the token keeps its connection, so clients without one (health pollers
      // included) cannot sit on the limits.maxConnections slots with keep-alive. A body not read whole (refused
      // first, or too large) is not read now either: the connection closes, so no client makes the server take it in.
      const close = authenticated && request.complete ? {} : { connection: 'close' };
      response.writeHead(reply.status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...close });
      response.end(reply.body);
    };
    // Nothing a request does may escape as an unhandled rejection: that would end the server for every client.
    void answer().catch((error: unknown) => {
      options.onInternalError(error);
      response.destroy();
    });
  };
}

async function handle(options: ApiOptions, request: IncomingMessage, authenticated: boolean): Promise<Reply> {
  const method = request.method ?? 'GET';
  const token = request.headers['x-vault-token'];
  let url: URL | undefined;
  let body: Buffer | undefined;
  let reply: Reply;
  try {
    url = parseTarget(request.url);
    // Token and route first: a client with no valid token (or no valid route) never has its body read.
    const action = route(options, method, url, authenticated);
    // Memory hold: nothing reachable without the token reads a body (health with a 1 MiB body held 1 MiB per connection).
    if (!authenticated && hasBody(request)) throw new ServerError(400, 'invalid_request', `${url.pathname} takes no body without a token; send it without one`);
    body = await readBody(request, options.maxBodyBytes);
    reply = await action(body);
  } catch (error) {
    reply = failure(options, error);
  }
  // Values never in clear: token, query values, request and response bodies are HMAC'd; the path (names, not values) is kept.
  options.audit.record({
    type: 'host',
    action: 'request',
    fields: {
      method,
      ...auditedTarget(options.hasher, url, authenticated),
      status: reply.status,
      code: reply.code ?? null,
      token: typeof token === 'string' ? options.hasher.hash(token) : null,
      request: body && body.length > 0 ? options.hasher.hash(body) : null,
      response: reply.body && reply.body.length > 0 && reply.status < 300 ? options.hasher.hash(reply.body) : null,
    },
  });
  if (authenticated) {
    // Unaudited service: a request with the token is answered only once its record is on disk, never if it cannot be.
    await options.audit.flush().catch((error: unknown) => {
      reply = errorReply(
        isGatehouseError(error, 'AUDIT_RECORDS_DROPPED')
          ? new ServerError(503, 'audit_failed', 'the audit log dropped this request\'s record (its disk is behind), so it is not answered; try again')
          : auditFailed(),
      );
    });
  }
  return reply;
}

/** How much of the path of a request without a valid token is recorded. */
const MAX_UNAUTHENTICATED_PATH = 256;

/** The path and query as recorded, and `cutTarget`, the HMAC of the whole target when the recorded path was cut. */
function auditedTarget(hasher: AuditHasher, url: URL | undefined, authenticated: boolean): { path: string | null; query: string | null; cutTarget: string | null } {
  if (url === undefined) return { path: null, query: null, cutTarget: null };
  const query = url.search.slice(1);
  if (authenticated) return { path: url.pathname, query: auditedQuery(hasher, query), cutTarget: null };
  // Audit flood: unauthenticated 16 KiB targets, each recorded whole, wrote 80 MiB/s until the disk was full. Such a
  // request reaches no engine, so its query is one HMAC (an HMAC per value of 80 short values would take 6 KiB).
  return {
    path: url.pathname.slice(0, MAX_UNAUTHENTICATED_PATH),
    query: query === '' ? null : hasher.hash(query),
    cutTarget: url.pathname.length > MAX_UNAUTHENTICATED_PATH ? hasher.hash(url.pathname + url.search) : null,
  };
}

/**
 * The query as recorded: what the engine was asked (a read of ?version=1 is not a read of the latest). Parameter
 * names are kept like the path; each value is HMAC'd as it was sent, as Vault does with request data: a client
 * may put a secret in a query.
 */
function auditedQuery(hasher: AuditHasher, query: string): string | null {
  if (query === '') return null;
  return query
    .split('&')
    .map((parameter) => {
      const equals = parameter.indexOf('=');
      return equals === -1 ? parameter : `${parameter.slice(0, equals + 1)}${hasher.hash(parameter.slice(equals + 1))}`;
    })
    .join('&');
}

/** The request target as a URL; a target no URL parser accepts is the client's error, not the server's. */
function parseTarget(target: string | undefined): URL {
  try {
    return new URL(target ?? '/', 'http://localhost');
  } catch (cause) {
    // A target such as "//[" must not throw out of the handler (it once ended the server).
    throw new ServerError(400, 'invalid_request', 'the request target is not a valid path', { cause });
  }
}

const HEALTH_PATH = '/v1/sys/health';

const auditFailed = () =>
  new ServerError(503, 'audit_failed', 'the audit log cannot record, so the server serves nothing until an operator restores it; see the server log');

/** The request's action, or the refusal (403, 404, 405) that is answered without reading its body. */
function route(options: ApiOptions, method: string, url: URL, authenticated: boolean): Action {
  // Unaudited service: once the audit log cannot record, nothing is served (Vault refuses likewise), and health
  // says so: a healthy answer would keep a load balancer sending traffic to a server that serves none.
  if (options.auditFailure() !== undefined) throw auditFailed();
  if (url.pathname === HEALTH_PATH) {
    if (method !== 'GET') throw methodNotAllowed(method, url);
    return async () => {
      // A release about to expire is an outage waiting for the next engine restart: monitoring sees it here.
      const release = options.mounts.releaseExpiry();
      return json(200, {
        initialized: true,
        sealed: false,
        standby: false,
        server_time_utc: Math.floor(Date.now() / 1000),
        release_expires_utc: release.expires === undefined ? null : Math.floor(Date.parse(release.expires) / 1000),
        release_expiring: release.expiring,
      });
    };
  }
  const parts = url.pathname.split('/').slice(1);
  if (parts[0] !== 'v1') throw new ServerError(404, 'not_found', `${url.pathname}: the API is under /v1/`);
  const [area = '', ...rest] = parts.slice(1);
  if (!authenticated) throw new ServerError(403, 'permission_denied', 'permission denied: send a valid token in the X-Vault-Token header');
  if (area === 'sys') return system(options, method, url, rest);
  if (area === '' || rest.length === 0) throw new ServerError(404, 'not_found', `${url.pathname}: use /v1/<mount>/<path>`);
  return engineRequest(options, method, area, rest.join('/') + url.search);
}

function system(options: ApiOptions, method: string, url: URL, rest: string[]): Action {
  const [what, ...more] = rest;
  if (what === 'mounts' && more.length === 1) {
    const path = more[0] as string;
    if (method === 'POST' || method === 'PUT') {
      return async (body) => {
        const request = objectBody(body);
        return json(200, { data: await options.mounts.mount(path, request.plugin, request.version) });
      };
    }
    if (method === 'DELETE') {
      return async () => {
        await options.mounts.unmount(path);
        return { status: 204, body: undefined };
      };
    }
    throw methodNotAllowed(method, url);
  }
  if (what === 'plugins' && more.length === 0) {
    if (method !== 'GET') throw methodNotAllowed(method, url);
    return async () => json(200, { data: { mounts: options.mounts.list() } });
  }
  if (what === 'plugins' && more[0] === 'reload' && more.length === 2) {
    if (method !== 'POST' && method !== 'PUT') throw methodNotAllowed(method, url);
    return async (body) => {
      const request = body.length === 0 ? {} : objectBody(body);
      return json(200, { data: await options.mounts.reload(more[1] as string, request.version) });
    };
  }
  throw new ServerError(404, 'not_found', `${url.pathname}: no such system path`);
}

/** gRPC's DEADLINE_EXCEEDED, which CALL_FAILED carries in details.grpcCode. */
const GRPC_DEADLINE_EXCEEDED = 4;

const OPERATIONS: Record<string, string> = { GET: 'read', PUT: 'write', POST: 'write', DELETE: 'delete' };

function engineRequest(options: ApiOptions, method: string, mount: string, path: string): Action {
  const operation = OPERATIONS[method];
  if (operation === undefined) throw new ServerError(405, 'method_not_allowed', `${method} is not supported; use GET, PUT, POST or DELETE`);
  options.mounts.check(mount);
  return async (body) => {
    if (body.length > 0) objectBody(body); // malformed JSON is refused here, before any engine sees it
    const reply = await options.mounts.handle(mount, operation, path, body);
    // The engine is another program: its status is taken only from the HTTP range.
    const status = Number.isInteger(reply.status) && reply.status >= 200 && reply.status <= 599 ? reply.status : 502;
    return { status, body: status === 204 ? undefined : reply.body };
  };
}

function objectBody(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ServerError(400, 'invalid_json', 'the body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ServerError(400, 'invalid_json', 'the body must be a JSON object');
  return value as Record<string, unknown>;
}

function methodNotAllowed(method: string, url: URL): ServerError {
  return new ServerError(405, 'method_not_allowed', `${method} ${url.pathname} is not supported`);
}

/** Whether the request says a body follows, known from its headers before any of the body is read. */
const hasBody = (request: IncomingMessage) => request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0;

/** The body, refused past `limit` bytes without reading (or holding) the rest. */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        request.removeAllListeners('data');
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    request.once('end', () => resolve(Buffer.concat(chunks)));
    // The request fails only when its client hangs up mid-body: the client's doing, not an internal error.
    request.once('error', (cause) => reject(new ServerError(400, 'request_aborted', 'the client closed the connection before the body was complete', { cause })));
  });
}

const tooLarge = (limit: number) => new ServerError(413, 'body_too_large', `the body is larger than ${limit} bytes`);

/** A failure as its reply; one that is not the client's is also told to the operator, since the reply does not explain it. */
function failure(options: ApiOptions, error: unknown): Reply {
  const reply = errorReply(error);
  if (reply.code === 'internal') options.onInternalError(error);
  return reply;
}

/** Every failure as {"errors": [...], "code": ...}: the code is stable, the message says what to do. */
function errorReply(error: unknown): Reply {
  const [status, code, message] = classify(error);
  return { ...json(status, { errors: [message], code }), code };
}

function classify(error: unknown): [number, string, string] {
  if (error instanceof ServerError) return [error.status, error.code, error.message];
  if (isGatehouseError(error)) {
    switch (error.code) {
      case 'PLUGIN_CRASHED':
        return [503, 'plugin_crashed', error.message];
      case 'PLUGIN_DOWN':
        return [503, 'plugin_down', error.message];
      case 'PLUGIN_BUSY':
        return [503, 'plugin_busy', error.message];
      case 'SUPERVISOR_STOPPED':
        return [503, 'plugin_stopped', error.message];
      case 'CALL_FAILED':
        // gRPC DEADLINE_EXCEEDED (4): the engine did not answer in time.
        if (error.details.grpcCode === GRPC_DEADLINE_EXCEEDED) return [504, 'plugin_timeout', `the engine did not answer in time: ${error.message}`];
        return [502, 'plugin_failed', error.message];
      default:
        return [502, 'plugin_failed', `${error.code}: ${error.message}`];
    }
  }
  return [500, 'internal', 'internal error; see the server log'];
}

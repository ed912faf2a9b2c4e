// The HTTP layer under hostile clients: requests fetch() would never send, bodies cut short, floods of
// connections. Each is answered (or refused) and the server stays up for everyone else.
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { connect, type AddressInfo, type Socket } from 'node:net';
import test from 'ava';
import type { AuditLog } from 'gatehouse-plugins';
import { AuditHasher } from '../../examples/secrets-server/audit-hmac.js';
import { apiHandler } from '../../examples/secrets-server/http.js';
import type { Mounts } from '../../examples/secrets-server/mounts.js';
import { auditedRequests, rawRequest, startTestServer } from './harness.js';

const statusLine = (reply: string) => reply.split('\r\n', 1)[0];
/** The JSON object in a raw reply (its body may be chunked: the object is the one brace-delimited part). */
const replyJson = (reply: string) => JSON.parse(reply.slice(reply.indexOf('{'), reply.lastIndexOf('}') + 1)) as Record<string, unknown>;

test('http: a request target that is not a URL gets a 400, is audited, and the server stays up', async (t) => {
  const s = await startTestServer(t);
  const targets = ['//[', '//%', '//a:99999/'];
  for (const target of targets) {
    const reply = await rawRequest(s.server.url, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    t.is(statusLine(reply), 'HTTP/1.1 400 Bad Request', target);
    t.like(replyJson(reply), { code: 'invalid_request' }, target);
  }
  t.is((await s.api('GET', '/v1/sys/health', undefined, { token: null })).status, 200);
  await s.server.close();
  const refused = (await auditedRequests(s.home)).filter((fields) => fields.status === 400);
  t.is(refused.length, targets.length);
  t.true(refused.every((fields) => fields.code === 'invalid_request' && fields.method === 'GET'));
});

test('http: a failure outside a request\'s own handling still answers 500 and never escapes as a rejection', async (t) => {
  const internal: unknown[] = [];
  const audit: AuditLog = {
    record: () => {
      throw new Error('audit refused the record');
    },
    flush: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  const server = createServer(
    apiHandler({
      mounts: { releaseExpiry: () => ({ expires: undefined, expiring: false }) } as unknown as Mounts,
      audit,
      hasher: new AuditHasher(Buffer.alloc(32)),
      rootTokenSha256: '0'.repeat(64),
      maxBodyBytes: 1024,
      auditFailure: () => undefined,
      onInternalError: (error) => internal.push(error),
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/sys/health`);
  t.is(response.status, 500);
  t.like(await response.json(), { code: 'internal' });
  t.regex(String(internal[0]), /audit refused the record/);
});

test('http: a request refused for its token or route is answered before its body is read, and its connection closed', async (t) => {
  const s = await startTestServer(t);
  // Each declares a 1 MiB body and sends 1 KiB of it: the server must answer without the rest.
  const partial = (head: string) => rawRequest(s.server.url, `${head}\r\nHost: x\r\nContent-Length: ${1024 * 1024}\r\n\r\n${'a'.repeat(1024)}`, { keepOpen: true });
  const noToken = await partial('PUT /v1/secret/data/x HTTP/1.1');
  t.is(statusLine(noToken), 'HTTP/1.1 403 Forbidden');
  t.like(replyJson(noToken), { code: 'permission_denied' });
  const noMount = await partial(`PUT /v1/nowhere/data/x HTTP/1.1\r\nX-Vault-Token: ${s.token}`);
  t.like(replyJson(noMount), { code: 'no_such_mount' });
  const noMethod = await partial(`PATCH /v1/sys/mounts/x HTTP/1.1\r\nX-Vault-Token: ${s.token}`);
  t.like(replyJson(noMethod), { code: 'method_not_allowed' });
  // A refused request whose body is already all there gets the same answers (its connection stays open only with the token).
  t.like(await s.api('PUT', '/v1/secret/data/x', { data: { v: 1 } }, { token: 'gh.wrong' }), { status: 403 });
  t.like(await s.api('PUT', '/v1/nowhere/data/x', { data: { v: 1 } }), { status: 404, json: { code: 'no_such_mount' } });
});

/** `count` open connections to the server at `url`, each once connected (and `first` sent, when given). */
function holdConnections(url: string, count: number, first?: string): Promise<Socket[]> {
  const { hostname, port } = new URL(url);
  return Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Socket>((resolve) => {
          const socket = connect(Number(port), hostname, () => (first === undefined ? resolve(socket) : socket.write(first, () => resolve(socket))));
          socket.on('error', () => {});
        }),
    ),
  );
}

test('http: connections past limits.maxConnections are refused; a freed slot serves again', async (t) => {
  const s = await startTestServer(t, { limits: { maxConnections: 2 } });
  // Two clients hold a connection each, with a request they have not finished sending.
  const held = await holdConnections(s.server.url, 2, 'GET /v1/sys/health HTTP/1.1\r\n');
  // A connection past the cap is closed unanswered (reset, as Node drops it).
  const health = () =>
    rawRequest(s.server.url, 'GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n').catch((error: NodeJS.ErrnoException) =>
      error.code === 'ECONNRESET' ? '' : Promise.reject(error),
    );
  t.is(await health(), '', 'the third connection is closed unanswered');
  for (const socket of held) socket.destroy();
  // The server sees the two close in its own time; a slot then serves again.
  let reply = '';
  while (reply === '') reply = await health();
  t.is(statusLine(reply), 'HTTP/1.1 200 OK');
});

/** Resolves with what the server wrote once it closes the connection, or with undefined if it has not within `withinMs`. */
function closedByServer(socket: Socket, withinMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let reply = '';
    socket.on('data', (chunk: Buffer) => (reply += chunk.toString('utf8')));
    socket.on('error', () => {});
    const timer = setTimeout(() => resolve(undefined), withinMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(reply);
    });
  });
}

test('http: a connection that has not sent a whole request header (nothing, a byte at a time, half a header) is closed by the server', async (t) => {
  const s = await startTestServer(t);
  const { hostname, port } = new URL(s.server.url);
  const open = () =>
    new Promise<Socket>((resolve) => {
      const socket = connect(Number(port), hostname, () => resolve(socket));
    });
  const [silent, trickling, halfHeader] = await Promise.all([open(), open(), open()]);
  // A header that never ends, a byte every 100 ms.
  trickling.write('GET /v1/sys/health HTTP/1.1\r\nX-Slow: ');
  const trickle = setInterval(() => trickling.writable && trickling.write('a'), 100);
  t.teardown(() => clearInterval(trickle));
  halfHeader.write('GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n');
  // A wait that fails the test, well past the header deadline: such a connection held its slot 30 to 40 s.
  const replies = await Promise.all([silent, trickling, halfHeader].map((socket) => closedByServer(socket, 20_000)));
  t.deepEqual(
    replies.map((reply) => reply?.split('\r\n', 1)[0]),
    ['HTTP/1.1 408 Request Timeout', 'HTTP/1.1 408 Request Timeout', 'HTTP/1.1 408 Request Timeout'],
    'silent, trickling and half-sent: each answered 408 and closed by the server',
  );
});

test('http: connections that send nothing hold the slots only until the header deadline; the operator then gets in', async (t) => {
  const s = await startTestServer(t, { limits: { maxConnections: 2 } });
  const held = await holdConnections(s.server.url, 2);
  t.teardown(() => held.forEach((socket) => socket.destroy()));
  // The operator's request, whole in one write; the client keeps its side open, as one waiting for the answer does.
  const plugins = () =>
    rawRequest(s.server.url, `GET /v1/sys/plugins HTTP/1.1\r\nHost: x\r\nX-Vault-Token: ${s.token}\r\nConnection: close\r\n\r\n`, { keepOpen: true }).catch(() => '');
  t.is(await plugins(), '', 'locked out while the two connections hold the slots');
  // The attacker's connections are never closed by the client: only the server's deadline frees their slots.
  const until = Date.now() + 20_000;
  let reply = '';
  while (reply === '' && Date.now() < until) reply = await plugins();
  t.is(statusLine(reply), 'HTTP/1.1 200 OK', 'the operator got in within 20 s (such connections held the slots 30 to 40 s)');
});

test('http: a client that disconnects mid-body is audited as the client\'s doing, not logged as an internal error', async (t) => {
  const s = await startTestServer(t);
  for (let i = 0; i < 3; i++) {
    // The client hangs up 5 bytes into a 100-byte body; the server closing its side shows it has seen that.
    await rawRequest(s.server.url, `PUT /v1/sys/mounts/m${i} HTTP/1.1\r\nHost: x\r\nX-Vault-Token: ${s.token}\r\nContent-Length: 100\r\n\r\n{"plu`);
  }
  await s.server.close();
  const aborted = (await auditedRequests(s.home)).filter((fields) => typeof fields.path === 'string' && fields.path.startsWith('/v1/sys/mounts/m'));
  t.is(aborted.length, 3);
  t.true(aborted.every((fields) => fields.code === 'request_aborted'), JSON.stringify(aborted));
  t.deepEqual(s.lines.filter((line) => line.startsWith('internal error')), []);
});

test('http: a health request with a body is refused without reading it, and its connection closed', async (t) => {
  const s = await startTestServer(t);
  // Health needs no token: a body it read would be memory any client could make the server hold.
  const whole = await rawRequest(s.server.url, 'GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello', { keepOpen: true });
  t.is(statusLine(whole), 'HTTP/1.1 400 Bad Request');
  t.like(replyJson(whole), { code: 'invalid_request' });
  // Declared 1 MiB, 1 KiB sent: answered at once, without waiting for the rest.
  const partial = await rawRequest(s.server.url, `GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nContent-Length: ${1024 * 1024}\r\n\r\n${'a'.repeat(1024)}`, { keepOpen: true });
  t.is(statusLine(partial), 'HTTP/1.1 400 Bad Request');
  const chunked = await rawRequest(s.server.url, `GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n${'a'.repeat(1024)}\r\n`, { keepOpen: true });
  t.is(statusLine(chunked), 'HTTP/1.1 400 Bad Request');
  t.is((await s.api('GET', '/v1/sys/health', undefined, { token: null })).status, 200);
});

test('http: answers to requests without a valid token, health included, close the connection; a request with the token keeps it', async (t) => {
  const s = await startTestServer(t);
  // Two requests pipelined on one connection: only the first is answered before the server closes it.
  const twice = (request: string) => rawRequest(s.server.url, request + request, { keepOpen: true });
  for (const [what, request] of [
    ['health', 'GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['no token', 'GET /v1/secret/data/x HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['wrong token', 'GET /v1/sys/plugins HTTP/1.1\r\nHost: x\r\nX-Vault-Token: gh.wrong\r\n\r\n'],
    ['not under /v1', 'GET /x HTTP/1.1\r\nHost: x\r\n\r\n'],
  ] as const) {
    const reply = await twice(request);
    t.regex(reply, /\r\nconnection: close\r\n/i, what);
    t.is(reply.split('HTTP/1.1 ').length - 1, 1, `${what}: one answer, then the connection is closed`);
  }
  const response = await fetch(`${s.server.url}/v1/sys/plugins`, { headers: { 'x-vault-token': s.token } });
  await response.text();
  t.is(response.headers.get('connection'), 'keep-alive');
});

test('http: a request without a valid token has its path recorded cut to 256 characters and its query as one HMAC, so its record stays under 1 KiB', async (t) => {
  const s = await startTestServer(t);
  // What a flood of unauthenticated requests with 16 KiB targets wrote whole into the audit log, 80 MiB/s.
  const target = `/v1/x/${'a'.repeat(15_000)}?q=${'b'.repeat(300)}`;
  // Short, but 80 values: each recorded as its own HMAC, they would take 6 KiB.
  const manyValues = `/v1/x/y?${'a=&'.repeat(80)}`;
  for (const path of [target, manyValues, '/v1/x/short?q=1']) t.is((await s.api('GET', path, undefined, { token: null })).status, 403);
  await s.server.close();
  const hasher = new AuditHasher(await readFile(join(s.home, 'audit-hmac.key')));
  const refused = (await auditedRequests(s.home)).filter((fields) => fields.status === 403);
  t.deepEqual(refused[0], {
    method: 'GET',
    path: `/v1/x/${'a'.repeat(250)}`,
    query: hasher.hash(`q=${'b'.repeat(300)}`),
    cutTarget: hasher.hash(target),
    status: 403,
    code: 'permission_denied',
    token: null,
    request: null,
    response: null,
  });
  t.like(refused[1], { path: '/v1/x/y', query: hasher.hash('a=&'.repeat(80)), cutTarget: null });
  t.like(refused[2], { path: '/v1/x/short', query: hasher.hash('q=1'), cutTarget: null });
  t.true(refused.every((fields) => JSON.stringify(fields).length < 1024));
});

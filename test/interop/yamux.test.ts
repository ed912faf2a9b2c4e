// gatehouse's yamux against hashicorp/yamux (Debian's, the library go-plugin >= 1.6 multiplexes with),
// with gatehouse as either end: streams both ways past the window, ping, and a clean close.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ExecutionContext } from 'ava';
import { YamuxSession } from '../../src/transport/yamux.js';
import { goTest, type GoBinaries } from './go-binaries.js';
import { readAll } from '../helpers/streams.js';

async function exercise(t: ExecutionContext, go: GoBinaries, ourRole: 'client' | 'server'): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-yamux-interop-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'peer.sock');

  let accepted: Promise<Socket> | undefined;
  if (ourRole === 'server') {
    const server = createServer();
    accepted = new Promise((resolve) =>
      server.once('connection', (socket: Socket) => {
        server.close();
        resolve(socket);
      }),
    );
    await new Promise<void>((resolve) => server.listen(path, resolve));
  }
  const peer = spawn(go.yamuxpeer, ['-role', ourRole === 'client' ? 'server' : 'client', '-socket', path], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => peer.kill('SIGKILL'));
  const lines: Array<Record<string, unknown>> = [];
  let stdout = '';
  let stderr = '';
  peer.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const listening = new Promise<void>((resolve) =>
    peer.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      for (const line of stdout.split('\n').slice(0, -1)) {
        if (line === 'listening') resolve();
        else if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      stdout = stdout.slice(stdout.lastIndexOf('\n') + 1);
    }),
  );
  // 'close', not 'exit': the peer's last stdout line may still be unread when it has exited.
  const exited = new Promise<number | null>((resolve) => peer.once('close', resolve));

  let socket: Socket;
  if (accepted) {
    socket = await accepted;
  } else {
    await listening;
    socket = connect(path);
  }
  const session = new YamuxSession(socket, ourRole);
  // Echo what Go opens as it arrives: 1 MiB, four windows, so our window updates must reach it.
  session.on('stream', (stream) => stream.pipe(stream));

  const payloads = [randomBytes(1024 * 1024), randomBytes(300 * 1024)];
  const echoed = await Promise.all(
    payloads.map((payload) => {
      const stream = session.open();
      stream.end(payload);
      return readAll(stream);
    }),
  );
  echoed.forEach((data, i) => t.true(data.equals(payloads[i] as Buffer), `stream ${i} echoed by Go intact`));

  const deadline = Date.now() + 20_000;
  while (!lines.some((l) => l.echo !== undefined) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(lines.find((l) => l.ping !== undefined), { ping: true }, stderr);
  t.deepEqual(lines.find((l) => l.echo !== undefined), { echo: true, bytes: 1024 * 1024 }, stderr);

  session.close();
  t.is(await exited, 0, stderr);
  t.deepEqual(lines.at(-1), { closed: true });
}

goTest('yamux interop: gatehouse as the client (host) end, hashicorp/yamux as the server', (t, go) => exercise(t, go, 'client'));
goTest('yamux interop: gatehouse as the server (plugin) end, hashicorp/yamux as the client', (t, go) => exercise(t, go, 'server'));

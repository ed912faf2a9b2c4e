// A plugin killed without grace dies while the host is still writing on its connection (the end of
// the broker stream, the Shutdown call). Node.js 20 can then keep that socket open for good (see
// src/transport/socket-tracking.ts): without the fix one kill in ten to four leaked a descriptor.
// Alone in its file so that no other test opens or closes descriptors in this process meanwhile.
import { readdirSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { launch, type LaunchOptions } from '../../src/index.js';
import { KV_COOKIE, loadKVService } from '../../examples/kv/kv.js';
import { goTest } from '../interop/go-binaries.js';
import { kvPluginScript } from '../helpers/paths.js';
import { waitUntil } from '../helpers/process.js';
import { privateTmpdir } from './harness.js';

privateTmpdir(test);

const CYCLES = 60;
const kvService = loadKVService();

const openFds = () => readdirSync('/proc/self/fd').length;

async function abruptKillsLeaveNoDescriptor(t: ExecutionContext, plugin: Pick<LaunchOptions, 'command' | 'args'>): Promise<void> {
  const cycle = async (i: number) => {
    const running = await launch({ ...plugin, cookie: KV_COOKIE, killGraceMs: 0 });
    await running.client(kvService).Put({ key: 'k', value: Buffer.from(String(i)) });
    await running.kill();
  };
  // The first cycle builds what stays for the life of the process (gRPC, TLS, loaded code).
  await cycle(-1);
  await delay(200);
  const before = openFds();
  for (let i = 0; i < CYCLES; i++) await cycle(i);
  // On a loaded machine the last handles may take longer to go; a leaked socket stays whatever the wait.
  await waitUntil(() => openFds() <= before, 2000);
  t.true(openFds() <= before, `file descriptors: ${before} before ${CYCLES} abrupt kills, ${openFds()} after`);
}

goTest('killing a Go plugin without grace, again and again, leaves no socket open in the host', (t, go) =>
  abruptKillsLeaveNoDescriptor(t, { command: go.kvplugin }),
);

// Serial: ava runs it before the (concurrent) Go test, so the two never count each other's descriptors.
test.serial('killing a TypeScript plugin without grace, again and again, leaves no socket open in the host', (t) =>
  abruptKillsLeaveNoDescriptor(t, { command: process.execPath, args: [kvPluginScript] }),
);

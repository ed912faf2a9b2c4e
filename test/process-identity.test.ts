// Which process a pid names: a record of a process (an audit log's writer mark, an install lock, a sealed copy's
// owner, a reattached plugin) is judged by pid and start time, and by whether that process still runs.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import test from 'ava';
import { isSameProcess, processStartTime, statFieldsAfterName } from '../src/process-identity.js';
import { ReattachedProcess } from '../src/host/reattached-process.js';

test('a zombie is not the process its record names: it has exited, only its parent has not reaped it yet', async (t) => {
  // The shell starts a child that exits at once, then becomes a sleep that never reaps it: a zombie for 30 s.
  const parent = spawn('/bin/sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => parent.kill('SIGKILL'));
  const zombie = Number((await new Promise<Buffer>((resolve) => parent.stdout.once('data', resolve))).toString());
  const started = await processStartTime(zombie);
  const state = async () => statFieldsAfterName(await readFile(`/proc/${zombie}/stat`, 'utf8').catch(() => ') ?'))[0];
  for (let i = 0; i < 500 && (await state()) !== 'Z'; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  t.is(await state(), 'Z', 'the child became a zombie');
  t.false(await isSameProcess(zombie, started));
  t.true(await isSameProcess(parent.pid!, await processStartTime(parent.pid!)), 'a live process still is');
  t.false(await isSameProcess(parent.pid!, '1'), 'nor is a live process with another start time');
});

test('a process whose first thread exited while its other threads run is still that process, and a reattached host can still kill it', async (t) => {
  // Attack: a hostile reattached plugin ends its main thread (pthread_exit) and serves on from another: its leader reads
  // as a zombie in /proc/PID/stat, and a host that took that for an exit stopped signalling it (kill() did nothing).
  const python = '/usr/bin/python3';
  if (!(await readFile(python).then(() => true, () => false))) {
    t.log('skipped: no /usr/bin/python3');
    t.pass();
    return;
  }
  const script = 'import ctypes, threading, time\nthreading.Thread(target=lambda: [time.sleep(1) for _ in iter(int, 1)]).start()\nprint("ready", flush=True)\nctypes.CDLL(None).pthread_exit(None)\n';
  const child = spawn(python, ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.teardown(() => child.kill('SIGKILL'));
  await new Promise((resolve) => child.stdout.once('data', resolve));
  const pid = child.pid!;
  const started = await processStartTime(pid);
  const state = async () => statFieldsAfterName(await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ') ?'))[0];
  for (let i = 0; i < 500 && (await state()) !== 'Z'; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  t.is(await state(), 'Z', 'the first thread exited');
  t.true(await isSameProcess(pid, started), 'the process still runs');
  if (!(await isSameProcess(pid, started))) return;
  const reattached = new ReattachedProcess(pid, started!);
  t.teardown(() => reattached.close());
  reattached.signal('SIGKILL');
  await exited;
  t.pass('killed');
});

// Which process a pid names: a record of a process (an audit log's writer mark, an install lock, a sealed copy's
// owner, a reattached plugin) is judged by pid and start time, and by whether that process still runs.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import test from 'ava';
import { isSameProcess, processStartTime, statFieldsAfterName } from '../src/process-identity.js';

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

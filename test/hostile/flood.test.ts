// A plugin flooding stdout and stderr cannot grow the host's memory: measured in a separate host
// process, so that nothing else in the test runner moves the figure.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { hostStillWorks, privateTmpdir } from './harness.js';

const execFileAsync = promisify(execFile);
privateTmpdir(test);

const MiB = 1024 * 1024;
/** Stop after this much output... */
const TARGET_BYTES = 1024 * MiB;
/**
 * ...or this long, on a slow machine; it must still have seen MIN_BYTES, far more than the bound on
 * growth, so buffering would show. Generous: a loaded 2-core machine is slow, not wrong.
 */
const MAX_MS = 150_000;
const MIN_BYTES = 512 * MiB;
/**
 * A host takes about 25 MiB more at its highest than before the launch (launch, TLS, gRPC and the
 * stream buffers included) while 1 GiB goes through; the bound leaves room for a busy garbage
 * collector and is still far below what buffering the flood would take.
 */
const MAX_RSS_GROWTH = 96 * MiB;

test('flood: a plugin writing stdout and stderr at full speed leaves the host\'s memory bounded', async (t) => {
  const host = fileURLToPath(new URL('../fixtures/flood-host.js', import.meta.url));
  t.timeout(MAX_MS + 60_000);
  const { stdout } = await execFileAsync(process.execPath, [host, String(TARGET_BYTES), String(MAX_MS)], { timeout: MAX_MS + 30_000 });
  const result = JSON.parse(stdout.trim()) as { rssBefore: number; rssMax: number; bytes: number; ms: number; records: number; stdoutLines: number };
  const growth = result.rssMax - result.rssBefore;
  t.log(`${Math.round(result.bytes / MiB)} MiB in ${result.ms} ms; host RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
  t.true(result.bytes >= MIN_BYTES, `only ${result.bytes} bytes went through`);
  t.true(result.records > 1000 && result.stdoutLines > 1000, 'the host read both streams line by line');
  t.true(growth < MAX_RSS_GROWTH, `host RSS grew by ${growth} bytes`);
  await hostStillWorks(t);
});

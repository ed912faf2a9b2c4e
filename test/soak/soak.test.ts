// The soak's short mode, run with the suite: launch/kill cycles leave no process, file descriptor,
// socket file or temporary directory behind, and the host's heap does not grow. The full run is
// `node --expose-gc dist/test/soak/soak.js 1000 "$PWD/dist/interop-go/bin/kvplugin"`.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { goBinaries } from '../interop/go-binaries.js';
import type { SoakReport } from './soak.js';

const execFileAsync = promisify(execFile);
const soak = fileURLToPath(new URL('./soak.js', import.meta.url));
const MiB = 1024 * 1024;

test('soak: launch/kill cycles leave nothing behind and the heap does not grow', async (t) => {
  // The Go plugin starts in milliseconds; the TypeScript one, when Go is absent, takes longer per cycle.
  const plugin = goBinaries ? [goBinaries.kvplugin] : [];
  const cycles = goBinaries ? 200 : 40;
  // A count of cycles, not a time budget: a loaded 2-core machine makes each cycle slower (it once took
  // more than the 55 s this used to allow). The timeouts only stop a soak that hangs.
  t.timeout(300_000);
  const { stdout, stderr } = await execFileAsync(process.execPath, ['--expose-gc', soak, String(cycles), ...plugin], { timeout: 280_000 }).catch(
    (error: { stdout?: string; stderr?: string }) => ({ stdout: error.stdout ?? '', stderr: error.stderr ?? '' }),
  );
  if (stdout.trim() === '') return void t.fail(`the soak printed no report (hung, or killed at its 280 s timeout): ${stderr.slice(-2000)}`);
  const report = JSON.parse(stdout.trim()) as SoakReport;
  t.log(
    `${report.cycles} cycles of ${report.command}: ${report.msPerCycle} ms each; heap ${(report.heapGrowthBytes / MiB).toFixed(1)} MiB, ` +
      `RSS ${(report.rssGrowthBytes / MiB).toFixed(1)} MiB after the warm-up; fds ${report.fdsBefore} -> ${report.fdsAfter}`,
  );
  t.is(report.processesLeft, 0);
  t.deepEqual(report.tmpEntriesLeft, []);
  t.true(report.fdsAfter <= report.fdsBefore, `file descriptors: ${report.fdsBefore} before, ${report.fdsAfter} after`);
  t.true(report.heapGrowthBytes < report.maxHeapGrowthBytes, `heap grew by ${report.heapGrowthBytes} bytes`);
  t.true(report.rssGrowthBytes < report.maxRssGrowthBytes, `RSS grew by ${report.rssGrowthBytes} bytes`);
});

// Runs the go-plugin 1.0.1 broker host fixture (test/interop/go/brokerhost) and reads its one-line JSON report.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { GoBinaries } from './go-binaries.js';

const execFileAsync = promisify(execFile);

export interface BrokerhostResult {
  runReadBack?: string;
  hostStored?: string;
  offered?: string;
  negotiatedVersion?: number;
  killMs?: number;
  error?: string;
}

export async function runBrokerhost(
  go: GoBinaries,
  args: string[],
): Promise<{ code: number; stderr: string; result: BrokerhostResult }> {
  let code = 0;
  let stdout: string;
  let stderr: string;
  try {
    ({ stdout, stderr } = await execFileAsync(go.brokerhost, args, { timeout: 45_000 }));
  } catch (error) {
    const failure = error as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof failure.code !== 'number') throw error;
    code = failure.code;
    stdout = failure.stdout ?? '';
    stderr = failure.stderr ?? '';
  }
  const lines = stdout.split('\n').filter((line) => line !== '');
  if (lines.length !== 1 || lines[0] === undefined) {
    throw new Error(`brokerhost must print exactly one line on stdout, got:\n${stdout}\nstderr:\n${stderr}`);
  }
  return { code, stderr, result: JSON.parse(lines[0]) as BrokerhostResult };
}

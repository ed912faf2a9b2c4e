// Runs one bench helper process (kvbench, securehash, the gatehouse host runner) and reads the one
// JSON object it prints. Helpers run one at a time: on two cores, anything beside them skews them.
import { execFile } from 'node:child_process';

export interface ChildOptions {
  /** A helper that hangs must fail the bench, not stall it. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * The environment every helper (and through go-plugin hosts, every plugin) gets: only what a process
 * needs to run. The bench's own environment can cost a Node.js plugin dearly: NODE_EXTRA_CA_CERTS,
 * for one, adds ~35 ms to every Node.js start here, and go-plugin passes its environment on.
 */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  for (const name of ['HOME', 'LANG', 'TMPDIR'] as const) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

export function runJson<T>(file: string, args: readonly string[], options: ChildOptions = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      [...args],
      { timeout: options.timeoutMs ?? 180_000, maxBuffer: 64 * 1024 * 1024, env: options.env ?? cleanEnv() },
      (error, stdout, stderr) => {
        const describe = (): string => `${file} ${args.join(' ')}\n${stderr.trim().slice(-2000)}`;
        if (error) {
          reject(new Error(`bench helper failed (${error.code ?? error.signal ?? "?"}): ${describe()}`));
          return;
        }
        const lines = stdout.split('\n').filter((line) => line.trim() !== '');
        const last = lines[lines.length - 1];
        try {
          if (last === undefined) throw new Error('no output');
          resolve(JSON.parse(last) as T);
        } catch (cause) {
          reject(new Error(`bench helper printed no JSON (${String(cause)}): ${describe()}`));
        }
      },
    );
  });
}

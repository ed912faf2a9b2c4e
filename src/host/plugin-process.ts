import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { chown } from 'node:fs/promises';
import { GatehouseError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ExitStatus } from '../transport/exit-status.js';
import { MAX_HANDSHAKE_LINE_BYTES } from '../transport/handshake.js';
import { LineSplitter } from '../transport/lines.js';
import { isolatedCommand, resolveRunAs, type IsolationOptions } from './isolation.js';
import { parentDeathPrefix } from './parent-death.js';
import { MAX_STDERR_LINE_BYTES, PluginStderr } from './plugin-output.js';

export interface SpawnSpec {
  name: string;
  command: string;
  args: readonly string[];
  env: Record<string, string>;
  cwd?: string;
  logger: Logger;
  onStdoutLine: (line: string) => void;
  /** The plugin's private directory, where it creates its socket. */
  socketDir: string;
  /** The host's own socket directory, for a sandboxed plugin to see (its brokered sockets). */
  hostSocketDir?: string;
  /** 'inherit' hands the host's stdin to the plugin; by default it reads /dev/null. */
  stdin?: 'ignore' | 'inherit';
  isolation?: IsolationOptions;
}

/** After SIGKILL, how long the kernel may take to report the exit before we call the kill failed. */
export const SIGKILL_WAIT_MS = 5000;

/** Whether `child` has exited within `ms` (at once, for 0 or less): an exit some tracer hides never comes. */
export async function exitsWithin(child: Pick<PluginProcess, 'exited' | 'hasExited'>, ms: number): Promise<boolean> {
  if (ms <= 0) return child.hasExited !== undefined;
  const timer = new Promise<false>((resolve) => setTimeout(() => resolve(false), ms).unref());
  return Promise.race([child.exited.then(() => true), timer]);
}

/**
 * How long to wait after exit for the plugin's last stderr bytes before reporting the exit. Normally the pipe
 * ends at once; the bound is for a grandchild that keeps it open. 100 ms was too short on a loaded machine,
 * where the end of the pipe came later and a crash was reported without the line that said why.
 */
const STDERR_DRAIN_MS = 1000;

/**
 * One plugin child process: its handshake line, its output routed to the logger, its exit, and the
 * signals that stop it. Knows nothing of gRPC.
 */
export class PluginProcess {
  readonly pid: number;
  /** The user the plugin runs as: its sockets must belong to this uid and no other. */
  readonly uid: number | undefined;
  /** The group the plugin runs as (its primary group; libuv drops supplementary ones for a run-as plugin). */
  readonly gid: number | undefined;
  readonly stderr: PluginStderr;
  /** Settles when the process has exited and its stderr has been read out. */
  readonly exited: Promise<ExitStatus>;
  private exitStatus: ExitStatus | undefined;
  private readonly child: ChildProcess;
  private readonly handshake: Promise<{ line: string; truncated: boolean }>;

  private constructor(child: ChildProcess, spec: SpawnSpec, uid: number | undefined, gid: number | undefined) {
    this.child = child;
    this.pid = child.pid as number;
    this.uid = uid;
    this.gid = gid;
    this.stderr = new PluginStderr(spec.name, spec.logger);

    let handshakeSeen = false;
    let onHandshake: (line: string, truncated: boolean) => void = () => {};
    this.handshake = new Promise((resolve) => {
      onHandshake = (line, truncated) => resolve({ line, truncated });
    });
    const stdout = new LineSplitter({
      maxLineBytes: MAX_HANDSHAKE_LINE_BYTES,
      onLine: (line, truncated) => {
        if (!handshakeSeen) {
          handshakeSeen = true;
          onHandshake(line, truncated);
        } else {
          spec.onStdoutLine(line);
        }
      },
    });
    const stderr = new LineSplitter({
      maxLineBytes: MAX_STDERR_LINE_BYTES,
      onLine: (line, truncated) => this.stderr.line(line, truncated),
    });
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stdout?.on('end', () => stdout.end());
    const stderrEnded = new Promise<void>((resolve) => {
      child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
      child.stderr?.on('end', () => {
        stderr.end();
        resolve();
      });
    });

    this.exited = new Promise<ExitStatus>((resolve) => {
      child.once('exit', (code, signal) => {
        // A grandchild that keeps stderr open must not delay the report forever.
        const drained = new Promise<void>((done) => setTimeout(done, STDERR_DRAIN_MS).unref());
        void Promise.race([stderrEnded, drained]).then(() => {
          this.exitStatus = { code, signal };
          resolve(this.exitStatus);
        });
      });
    });
  }

  /**
   * Spawns without a shell, in its own process group so that a kill reaches the plugin's children;
   * where setpriv allows, with a parent-death signal so that it cannot outlive a SIGKILLed host; and
   * as the user, with the limits and in the sandbox the spec asks for.
   */
  static async spawn(spec: SpawnSpec): Promise<PluginProcess> {
    const fail = (cause: Error): GatehouseError =>
      new GatehouseError('SPAWN_FAILED', `cannot start plugin ${spec.command}: ${cause.message}`, { cause });
    const isolation = spec.isolation ?? {};
    const runAs = resolveRunAs(isolation);
    const command = isolatedCommand(isolation, spec.command, spec.args, {
      socketDir: spec.socketDir,
      ...(spec.hostSocketDir !== undefined ? { hostSocketDir: spec.hostSocketDir } : {}),
      cwd: spec.cwd,
    });
    const [file = spec.command, ...args] = [...(await parentDeathPrefix(spec.logger)), ...command];
    // A wrapper would report a missing command as its own exit; checked first, it stays SPAWN_FAILED.
    // Synchronous: a thread-pool round trip cost ~0.5 ms of every launch here, and the path is the host's
    // own configuration, which spawn() below waits on synchronously too (libuv returns once the child has exec'd).
    if (file !== spec.command) {
      try {
        accessSync(spec.command, constants.X_OK);
      } catch (cause) {
        throw fail(cause as Error);
      }
    }
    // libuv reports a missing working directory as the wrapper's ENOENT: named here, it says what is wrong.
    if (spec.cwd !== undefined && !statSync(spec.cwd, { throwIfNoEntry: false })?.isDirectory()) {
      throw fail(new Error(`its working directory ${spec.cwd} is not a directory`));
    }
    // The plugin's user must create its socket in the private directory, which stays closed to others.
    if (runAs) await chown(spec.socketDir, runAs.uid, runAs.gid);
    const child = spawn(file, args, {
      env: spec.env,
      cwd: spec.cwd,
      shell: false,
      detached: true,
      stdio: [spec.stdin ?? 'ignore', 'pipe', 'pipe'],
      // libuv also drops the supplementary groups when it changes the ids.
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (cause) => reject(fail(cause)));
    });
    child.on('error', () => {}); // later errors (a failed kill) are reported by the caller's own checks
    return new PluginProcess(child, spec, runAs?.uid ?? process.getuid?.(), runAs?.gid ?? process.getgid?.());
  }

  get hasExited(): ExitStatus | undefined {
    return this.exitStatus;
  }

  /**
   * The first stdout line, as go-plugin's host reads it. Fails on exit, on timeout and on a line longer
   * than the limit (delivered as soon as the limit is passed, so an endless line cannot stall us).
   */
  async readHandshakeLine(timeoutMs: number, signal?: AbortSignal): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    let onAbort = (): void => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new GatehouseError('START_ABORTED', 'the launch was aborted before the handshake'));
      if (signal?.aborted) onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new GatehouseError(
              'START_TIMEOUT',
              `plugin printed no handshake line within ${timeoutMs} ms${this.stderr.describe()}`,
              { details: { stderrTail: this.stderr.lastLines() } },
            ),
          ),
        timeoutMs,
      );
    });
    const exitedFirst = this.exited.then((status): never => {
      throw new GatehouseError(
        'PLUGIN_EXITED',
        `plugin exited before its handshake (${describeExit(status)})${this.stderr.describe()}`,
        { details: { exitStatus: status, stderrTail: this.stderr.lastLines() } },
      );
    });
    try {
      const { line, truncated } = await Promise.race([this.handshake, timeout, exitedFirst, aborted]);
      if (truncated) {
        throw new GatehouseError('HANDSHAKE_TOO_LONG', `handshake line longer than ${MAX_HANDSHAKE_LINE_BYTES} bytes`);
      }
      return line;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      exitedFirst.catch(() => {});
      aborted.catch(() => {});
    }
  }

  /** Signals the plugin's whole process group; a no-op once it has exited. */
  signal(signal: NodeJS.Signals): void {
    if (this.exitStatus !== undefined) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // The group is already gone (ESRCH): nothing left to signal.
    }
  }
}

/** Signals only a resource limit sends, and what to change: an operator reading "killed by SIGXCPU" should not need the kernel's manual. */
const LIMIT_SIGNALS: Partial<Record<NodeJS.Signals, string>> = {
  SIGXCPU: 'it used up its CPU time limit, limits.cpuSeconds, which counts all the CPU time it ever used',
  SIGXFSZ: 'it wrote past the file size limit of its process',
};

export function describeExit(status: ExitStatus): string {
  // A reattached plugin is not this host's child: its exit is seen, its status never is.
  if (status.signal === null && status.code === null) return 'exit status unknown: not started by this process';
  if (status.signal === null) return `exit code ${status.code}`;
  const limit = LIMIT_SIGNALS[status.signal];
  return `killed by ${status.signal}${limit === undefined ? '' : `: ${limit}`}`;
}

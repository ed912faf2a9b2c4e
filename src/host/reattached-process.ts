import { isSameProcess } from '../process-identity.js';
import type { ExitStatus } from '../transport/exit-status.js';

/** How often a reattached plugin, which is not our child, is checked for having exited. */
const EXIT_POLL_MS = 200;


/**
 * A plugin process this host did not start: its exit is seen by polling (no exit code is known), and
 * it is signalled only while its pid still names the process that was recorded.
 */
export class ReattachedProcess {
  readonly exited: Promise<ExitStatus>;
  private exitStatus: ExitStatus | undefined;
  private readonly poll: NodeJS.Timeout;

  constructor(
    readonly pid: number,
    private readonly startTime: string,
  ) {
    let resolveExit: (status: ExitStatus) => void = () => {};
    this.exited = new Promise((resolve) => (resolveExit = resolve));
    this.poll = setInterval(() => {
      void this.isSameProcess().then((alive) => {
        if (alive || this.exitStatus !== undefined) return;
        clearInterval(this.poll);
        this.exitStatus = { code: null, signal: null };
        resolveExit(this.exitStatus);
      });
    }, EXIT_POLL_MS);
    // Not unref'd: like a launched plugin's pipes, a running plugin keeps its host's event loop alive.
  }

  /** Stops watching for the exit: for a reattach that failed, whose poll would otherwise keep the host alive. */
  close(): void {
    clearInterval(this.poll);
  }

  get hasExited(): ExitStatus | undefined {
    return this.exitStatus;
  }

  /** Whether the pid still names the recorded process. */
  isSameProcess(): Promise<boolean> {
    return isSameProcess(this.pid, this.startTime);
  }

  /** Signals the plugin's process group (it leads it, as launch() started it). */
  signal(signal: NodeJS.Signals): void {
    if (this.exitStatus !== undefined) return;
    // Checked just before: a pid reused by another process after the plugin exited is never signalled.
    void this.isSameProcess().then((same) => {
      if (!same) return;
      try {
        process.kill(-this.pid, signal);
      } catch {
        // the group is gone
      }
    });
  }
}

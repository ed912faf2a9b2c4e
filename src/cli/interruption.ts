/** Ctrl-C and SIGTERM: the first stops the run cleanly, a second exits at once. */
import { constants } from 'node:os';

const handled = ['SIGINT', 'SIGTERM'] as const;
type HandledSignal = (typeof handled)[number];

export class Interrupted extends Error {
  readonly exitCode: number;

  constructor(readonly signal: HandledSignal) {
    super(`interrupted by ${signal}`);
    this.exitCode = 128 + constants.signals[signal];
  }
}

export interface Interruption {
  /** Rejects with an Interrupted at the first signal, for racing against the work under way. */
  stopped: Promise<never>;
  dispose(): void;
}

/**
 * Watches for SIGINT and SIGTERM. The first lets the run stop the plugin gracefully; a second exits at
 * once (the host's exit hook still SIGKILLs the plugin).
 */
export function watchSignals(): Interruption {
  let stop: (error: Interrupted) => void = () => {};
  const stopped = new Promise<never>((_, reject) => (stop = reject));
  stopped.catch(() => {}); // observed through Promise.race; this only marks it handled
  let signalled = false;
  const onSignal = (signal: HandledSignal): void => {
    if (signalled) process.exit(new Interrupted(signal).exitCode);
    signalled = true;
    stop(new Interrupted(signal));
  };
  for (const signal of handled) process.on(signal, onSignal);
  return {
    stopped,
    dispose: () => {
      for (const signal of handled) process.off(signal, onSignal);
    },
  };
}

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
  /** Aborted by the first signal, with an Interrupted as its reason; launch() takes it. */
  signal: AbortSignal;
  /** Rejects with that Interrupted, for racing against work that takes no AbortSignal. */
  stopped: Promise<never>;
  /** The Interrupted, once a signal has come. */
  reason(): Interrupted | undefined;
  dispose(): void;
}

/**
 * Watches for SIGINT and SIGTERM. The first lets the run stop the plugin gracefully; a second exits at
 * once (the host's exit hook still SIGKILLs the plugin).
 */
export function watchSignals(): Interruption {
  const controller = new AbortController();
  let interrupted: Interrupted | undefined;
  const stopped = new Promise<never>((_, reject) => {
    controller.signal.addEventListener('abort', () => reject(interrupted), { once: true });
  });
  stopped.catch(() => {}); // observed through Promise.race; this only marks it handled
  const onSignal = (signal: HandledSignal): void => {
    if (interrupted !== undefined) process.exit(new Interrupted(signal).exitCode);
    interrupted = new Interrupted(signal);
    controller.abort(interrupted);
  };
  for (const signal of handled) process.on(signal, onSignal);
  return {
    signal: controller.signal,
    stopped,
    reason: () => interrupted,
    dispose: () => {
      for (const signal of handled) process.off(signal, onSignal);
    },
  };
}

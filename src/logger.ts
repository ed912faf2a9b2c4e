/**
 * The logging interface gatehouse writes to: the subset of pino's API it uses, so a pino logger (or
 * anything shaped like one) can be passed as is. Silent unless the caller passes one.
 */
export interface LogFn {
  (fields: Record<string, unknown>, message: string): void;
}

export interface Logger {
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

const ignore: LogFn = () => {};

export const silentLogger: Logger = Object.freeze({
  trace: ignore,
  debug: ignore,
  info: ignore,
  warn: ignore,
  error: ignore,
});

/**
 * How a peer process ended. The host's process handling produces it; the call path below it reports it
 * in PLUGIN_EXITED errors, so it lives here rather than with the process.
 */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

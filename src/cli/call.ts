/**
 * `gatehouse call`: grpcurl for go-plugin plugins. Launches a plugin through the host API, calls one
 * method (or a script of methods) with requests written in proto3 JSON, prints each response as one
 * JSON line on stdout and stops the plugin. Plugin logs and the one failure line go to stderr.
 */
import { launch } from '../host/launch.js';
import { HELP, parseCallArgs, type CallSettings } from './call-args.js';
import { planCalls, type PlannedCall } from './call-plan.js';
import { prepareTarget } from './call-target.js';
import { describeFailure, reportFailure, type FailureContext } from './failures.js';
import { watchSignals, type Interruption } from './interruption.js';
import { invokeMethod } from './invoke-method.js';
import { pluginLogger } from './plugin-logs.js';
import { loadProtos } from './proto-files.js';
import { reflectedRoot, REFLECTION_SOURCE } from './reflection-protos.js';
import { writeStdoutLine } from './terminal.js';

/** Runs `gatehouse call` and returns its exit code; failures are reported on stderr, never thrown. */
export async function callCommand(argv: readonly string[]): Promise<number> {
  const context: FailureContext = {};
  const interruption = watchSignals();
  try {
    const settings = parseCallArgs(argv);
    if (settings === 'help') {
      await writeStdoutLine(HELP.trimEnd());
      return 0;
    }
    await runCall(settings, context, interruption);
    return 0;
  } catch (error) {
    return reportFailure('call', describeFailure(error, context));
  } finally {
    interruption.dispose();
  }
}

/** The calls, planned from the --proto files; a file that cannot be read is reported as "proto: CODE: ...". */
async function protoCalls(settings: CallSettings, context: FailureContext): Promise<PlannedCall[]> {
  context.stage = 'proto';
  const root = await loadProtos(settings.protoFiles, settings.importPaths);
  delete context.stage;
  return planCalls(root, settings.calls, settings.protoFiles);
}

async function runCall(settings: CallSettings, context: FailureContext, interruption: Interruption): Promise<void> {
  const reflect = settings.protoFiles.length === 0;
  // With .proto files every call is planned before the plugin starts: a bad line runs nothing.
  const planned = reflect
    ? undefined
    : await Promise.race([
        protoCalls(settings, context),
        interruption.stopped,
      ]);
  // Not raced with Ctrl-C: the sealed copy must exist to be removed (a second Ctrl-C exits at once).
  const target = await prepareTarget(settings.target, context, settings.sealDir);
  try {
    // Ctrl-C while sealing: the plugin must not start after the interrupt; the finally removes the copy.
    const interrupted = interruption.reason();
    if (interrupted !== undefined) throw interrupted;
    // go-plugin's default application protocol version.
    const protocolVersions = settings.protocolVersions ?? target.protocolVersions ?? [1];
    const plugin = await launch({
      command: target.command,
      args: target.args,
      name: target.name,
      cookie: settings.cookie,
      protocolVersions,
      logger: pluginLogger(settings.jsonLogs),
      startTimeoutMs: settings.timeoutMs,
      insecurePlaintext: settings.insecure,
      // Ctrl-C during the handshake kills the plugin at once rather than after the start timeout.
      signal: interruption.signal,
    }).catch((error: unknown) => {
      throw interruption.reason() ?? error;
    });
    let failure: { error: unknown } | undefined;
    try {
      const calls =
        planned ??
        (await Promise.race([
          reflectedRoot(plugin, settings.timeoutMs).then((root) => planCalls(root, settings.calls, [REFLECTION_SOURCE])),
          interruption.stopped,
        ]));
      for (const call of calls) await Promise.race([invokeMethod(plugin, call, settings.timeoutMs, protocolVersions), interruption.stopped]);
    } catch (error) {
      failure = { error };
    }
    try {
      await plugin.kill();
    } catch (error) {
      failure ??= { error };
    }
    if (failure !== undefined) throw failure.error;
  } finally {
    await target.dispose();
  }
}

import * as grpc from '@grpc/grpc-js';
import type { Writable } from 'node:stream';
import type { Logger } from '../logger.js';
import type { CallPath } from '../transport/call-path.js';
import { MAX_HANDSHAKE_LINE_BYTES } from '../transport/handshake.js';
import { LineSplitter } from '../transport/lines.js';
import { StdioChannel, stdioService, type StdioData } from '../transport/stdio.js';
import { MAX_STDERR_LINE_BYTES, type PluginStderr } from './plugin-output.js';

/** Where a plugin's forwarded stdout and stderr go (go-plugin's SyncStdout / SyncStderr). */
export interface PluginStdio {
  stdout?: Writable;
  stderr?: Writable;
}

/** Without a writer, forwarded output is treated as the pipes' output is: lines to the same places. */
export interface StdioRouting {
  writers: PluginStdio;
  onStdoutLine: (line: string) => void;
  stderr: Pick<PluginStderr, 'line' | 'lastLines'>;
}

/**
 * Reads the plugin's GRPCStdio stream, as a go-plugin host does from the start. A plugin without it
 * (go-plugin < 1.4, such as Debian's 1.0.1) answers UNIMPLEMENTED: its output then only comes through
 * the pipes, and that is all.
 */
export function readPluginStdio(calls: CallPath, routing: StdioRouting, logger: Logger, pluginName: string): { close(): void } {
  const call = calls.serverStream(stdioService.StreamStdio, {}, {});
  const stdoutLines = new LineSplitter({ maxLineBytes: MAX_HANDSHAKE_LINE_BYTES, onLine: (line) => routing.onStdoutLine(line) });
  const stderrLines = new LineSplitter({
    maxLineBytes: MAX_STDERR_LINE_BYTES,
    onLine: (line, truncated) => routing.stderr.line(line, truncated),
  });
  const deliver = (writer: Writable | undefined, lines: LineSplitter, data: Buffer): void => {
    if (writer === undefined) return lines.push(data);
    // A slow writer pauses the stream, and with it the plugin's output: memory stays bounded.
    if (!writer.write(data)) {
      call.pause();
      writer.once('drain', () => call.resume());
    }
  };
  call.on('data', (message: StdioData) => {
    if (message.channel === StdioChannel.STDOUT) deliver(routing.writers.stdout, stdoutLines, message.data);
    else if (message.channel === StdioChannel.STDERR) deliver(routing.writers.stderr, stderrLines, message.data);
    else logger.debug({ plugin: pluginName, channel: message.channel }, 'dropping stdio data for an unknown channel');
  });
  call.on('error', (error: grpc.ServiceError) => {
    if (error.code !== grpc.status.CANCELLED) {
      logger.debug({ plugin: pluginName, code: grpc.status[error.code] }, 'plugin stdio stream unavailable');
    }
  });
  // At the end, or when the stream is cut (the plugin crashed, or the host stopped reading it): a last
  // line without its newline is still a line, and the one a crash report most often needs.
  const flush = (): void => {
    stdoutLines.end();
    stderrLines.end();
  };
  call.on('end', flush);
  call.on('close', flush);
  return { close: () => call.cancel() };
}

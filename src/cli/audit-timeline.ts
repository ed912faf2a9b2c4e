// `gatehouse audit show`: a verified log's timeline as lines a person reads, in log order. Every string in a record
// came from the host's log, and may hold what a plugin chose (its name, its error): escaped before the terminal sees it.
import type { Timeline, TimelineRefusal, TimelineRun, TimelineSegment } from '../audit/timeline.js';
import { escapeControls } from './terminal.js';

export function formatTimeline(timeline: Timeline): string {
  const entries: { seq: number; line: string }[] = [
    ...timeline.segments.map((segment) => ({ seq: segment.seq, line: segmentLine(segment) })),
    ...timeline.runs.map((run) => ({ seq: run.seq, line: runLine(run) })),
    ...timeline.refusals.map((refusal) => ({ seq: refusal.seq, line: refusalLine(refusal) })),
  ];
  entries.sort((a, b) => a.seq - b.seq);
  return entries.map((entry) => `${escapeControls(entry.line)}\n`).join('');
}

function segmentLine(segment: TimelineSegment): string {
  const host = segment.host;
  const who =
    host === undefined
      ? 'by a host that did not record itself'
      : `by pid ${String(host.pid)}${host.user === undefined ? '' : `, user ${String(host.user)}`} (uid ${String(host.uid ?? '?')}, gid ${String(host.gid ?? '?')}) on ${String(host.hostname ?? '?')}`;
  const unclosed =
    segment.notClosedBy === undefined || segment.notClosedBy.length === 0
      ? ''
      : `; not closed by pid ${segment.notClosedBy.join(', ')}: its last records may be lost, and its plugins died with it`;
  return `${segment.time} record ${segment.seq}: log ${segment.reopened ? 'reopened' : 'opened'} ${who}${unclosed}`;
}

function runLine(run: TimelineRun): string {
  const parts = [`${run.launched} record ${run.seq}: ${run.plugin} ran as pid ${run.pid}${run.uid === undefined ? '' : ` (uid ${run.uid}, gid ${String(run.gid ?? '?')})`}`];
  const verdict = run.verified;
  if (verdict === undefined) {
    parts.push('not verified by a manifest (launch())');
  } else {
    const release = verdict.manifestVersion === undefined ? '' : `, manifest version ${verdict.manifestVersion}`;
    const entry = verdict.version === undefined ? '' : `, entry version ${verdict.version}`;
    const from = verdict.manifestPath === undefined ? '' : ` (${verdict.manifestPath})`;
    parts.push(`verified sha256 ${verdict.sha256}, signed by ${verdict.keyIds.join(', ') || 'no key named'}${release}${entry}${from}`);
  }
  if (run.connected !== undefined) parts.push(`connected ${run.connected.time}, certificate sha256 ${run.connected.peerCertificateSha256}`);
  for (const kill of run.kills) parts.push(`${kill.method} sent ${kill.time}${kill.reason === undefined ? '' : ` (${kill.reason})`}`);
  parts.push(run.exit === undefined ? 'no exit recorded (still running when the log ends, or lost with its host)' : exitText(run.exit));
  return parts.join('; ');
}

function exitText(exit: NonNullable<TimelineRun['exit']>): string {
  const how = exit.signal !== null ? `killed by ${exit.signal}` : exit.code !== null ? `exited with code ${exit.code}` : 'ended (exit status unknown)';
  const asked = exit.stoppedByHost === undefined ? '' : exit.stoppedByHost ? ', the host had asked it to stop' : ', not asked to stop by the host';
  return `${how} ${exit.time}${asked}`;
}

function refusalLine(refusal: TimelineRefusal): string {
  const what = refusal.plugin ?? `manifest ${refusal.manifestPath ?? '?'}`;
  const evidence = refusal.file === undefined ? '' : ` (${refusal.file}: ${refusal.found ?? '?'}, signed ${refusal.signed ?? '?'})`;
  return `${refusal.time} record ${refusal.seq}: ${what} refused: ${refusal.code}${evidence}: ${refusal.message}`;
}

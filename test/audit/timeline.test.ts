// The timeline reads records that passed the chain checks, but their fields are whatever the host wrote (a plugin's
// name, its error): any shape is taken without a throw, and only what has the expected shape is shown.
import test from 'ava';
import fc from 'fast-check';
import { TimelineBuilder } from '../../src/audit/timeline.js';

const TYPES = ['audit-log-opened', 'audit-log-reopened', 'verification', 'launch', 'connected', 'kill', 'exit', 'refusal', 'host', 'checkpoint'];

test('timeline: records of any shape are taken without a throw, in any order', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ type: fc.constantFrom(...TYPES), fields: fc.dictionary(fc.constantFrom('plugin', 'pid', 'argv', 'sha256', 'keyIds', 'result', 'code', 'signal', 'method', 'host', 'notClosedBy', 'time', 'sealedPath', 'stoppedByHost'), fc.jsonValue()) }), { maxLength: 40 }),
      (records) => {
        const builder = new TimelineBuilder();
        records.forEach((record, index) => builder.add({ seq: index + 1, type: record.type, prev: '', logId: undefined, fields: record.fields as Record<string, unknown> }));
        const timeline = builder.finish();
        for (const run of timeline.runs) {
          if (typeof run.plugin !== 'string' || !Number.isSafeInteger(run.pid)) return false;
        }
        return timeline.refusals.every((refusal) => typeof refusal.code === 'string');
      },
    ),
  );
  t.pass();
});

test('timeline: a launch takes the verdict whose sealed copy it runs, even when launches of one plugin overlap', (t) => {
  const builder = new TimelineBuilder();
  let seq = 0;
  const add = (type: string, fields: Record<string, unknown>) => builder.add({ seq: ++seq, type, prev: '', logId: undefined, fields: { time: 't', ...fields } });
  add('audit-log-opened', {});
  add('verification', { plugin: 'kv', sha256: '1'.repeat(64), keyIds: [], result: 'accepted', sealedPath: '/seal/a' });
  add('verification', { plugin: 'kv', sha256: '2'.repeat(64), keyIds: [], result: 'accepted', sealedPath: '/seal/b' });
  add('launch', { plugin: 'kv', pid: 2, argv: ['/seal/b/plugin/kv'] });
  add('launch', { plugin: 'kv', pid: 1, argv: ['/seal/a/plugin/kv'] });
  add('exit', { plugin: 'kv', pid: 1, code: 0, signal: null });
  const { runs } = builder.finish();
  t.deepEqual(
    runs.map((run) => [run.pid, run.verified?.sha256[0], run.exit?.code ?? 'running']),
    [
      [2, '2', 'running'],
      [1, '1', 0],
    ],
  );
});

test('timeline: a launch that runs no verdict\'s sealed copy is shown unverified, even when a verdict of its name is left over; a system interpreter running the copy is its launch', (t) => {
  const builder = new TimelineBuilder();
  let seq = 0;
  const add = (type: string, fields: Record<string, unknown>) => builder.add({ seq: ++seq, type, prev: '', logId: undefined, fields: { time: 't', ...fields } });
  add('audit-log-opened', {});
  // A verdict whose launch failed before its launch record (launch() refused an option, spawn failed) is left over...
  add('verification', { plugin: 'kv', sha256: '1'.repeat(64), keyIds: ['release'], result: 'accepted', sealedPath: '/seal/a' });
  // ...and a later launch() of the same name, from a path nobody verified, must not wear it.
  add('launch', { plugin: 'kv', pid: 1, argv: ['/opt/unverified/kv'] });
  add('verification', { plugin: 'py', sha256: '2'.repeat(64), keyIds: ['release'], result: 'accepted', sealedPath: '/seal/b' });
  add('launch', { plugin: 'py', pid: 2, argv: ['/usr/bin/python3', '/seal/b/plugin/main.py'] });
  // A log written before verdicts named their copy: the oldest verdict of the name, as before.
  add('verification', { plugin: 'old', sha256: '3'.repeat(64), keyIds: ['release'], result: 'accepted' });
  add('launch', { plugin: 'old', pid: 3, argv: ['/somewhere/old'] });
  const { runs } = builder.finish();
  t.deepEqual(
    runs.map((run) => [run.plugin, run.verified?.sha256[0] ?? 'unverified']),
    [
      ['kv', 'unverified'],
      ['py', '2'],
      ['old', '3'],
    ],
  );
});

import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { LEASE_EXPIRY_MS, pidScope } from '../../src/process-identity.js';
import test from 'ava';
import { isGatehouseError, type GatehouseError } from '../../src/errors.js';
import { openAuditLog, parseSealingKeys, verifyAuditLog, MAX_LINE_BYTES, type AuditEvent, type SealingKey } from '../../src/audit/index.js';

async function tempLogPath(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-audit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'audit.log');
}

function records(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8').split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>);
}

const oneOfEach: AuditEvent[] = [
  { type: 'discovery', plugin: 'kv', path: '/plugins/kv' },
  { type: 'verification', plugin: 'kv', sha256: 'ab'.repeat(32), keyIds: ['key-1'], result: 'accepted' },
  { type: 'launch', plugin: 'kv', pid: 4242, argv: ['/plugins/kv', '--flag'], sealedPath: '/run/sealed/kv' },
  { type: 'handshake', plugin: 'kv', protocolVersion: 1, network: 'tcp', address: '127.0.0.1:4000' },
  { type: 'connected', plugin: 'kv', peerCertificateSha256: 'cd'.repeat(32) },
  { type: 'kill', plugin: 'kv', pid: 4242, method: 'shutdown' },
  { type: 'exit', plugin: 'kv', pid: 4242, code: 0, signal: null },
  { type: 'refusal', plugin: 'evil', code: 'DIGEST_MISMATCH', message: 'digest does not match' },
];

test('a new log opens with a genesis record and chains every event in order', async (t) => {
  const path = await tempLogPath(t);
  const log = await openAuditLog(path);
  for (const event of oneOfEach) log.record(event);
  await log.close();

  t.deepEqual(await verifyAuditLog(path), { ok: true, records: oneOfEach.length + 1 });
  const lines = records(path);
  t.is(lines[0]?.type, 'audit-log-opened');
  t.regex(String(lines[0]?.logId), /^[0-9a-f]{32}$/);
  t.deepEqual(lines.map((record) => record.seq), lines.map((_, index) => index + 1));
  t.deepEqual(lines.slice(1).map((record) => record.type), oneOfEach.map((event) => event.type));
  t.like(lines[3], { type: 'launch', pid: 4242, argv: ['/plugins/kv', '--flag'], sealedPath: '/run/sealed/kv' });
  for (const record of lines) t.regex(String(record.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

test('the log file is created with mode 0600', async (t) => {
  const path = await tempLogPath(t);
  await (await openAuditLog(path)).close();
  t.is(statSync(path).mode & 0o777, 0o600);
});

test('re-opening a log continues its chain after an audit-log-reopened record', async (t) => {
  const path = await tempLogPath(t);
  const first = await openAuditLog(path);
  first.record(oneOfEach[0] as AuditEvent);
  await first.close();
  const second = await openAuditLog(path);
  second.record(oneOfEach[1] as AuditEvent);
  await second.close();

  t.deepEqual(await verifyAuditLog(path), { ok: true, records: 4 });
  t.deepEqual(records(path).map((record) => record.type), ['audit-log-opened', 'discovery', 'audit-log-reopened', 'verification']);
});

test('re-opening refuses a log whose last line is truncated, edited or not a record', async (t) => {
  const path = await tempLogPath(t);
  const log = await openAuditLog(path);
  log.record(oneOfEach[0] as AuditEvent);
  await log.close();
  const valid = readFileSync(path, 'utf8');

  const damaged = [
    valid.slice(0, -10),
    valid.replace('"plugin":"kv"', '"plugin":"kw"'),
    `${valid}{"seq":3}\n`,
    `${valid}\n`,
  ];
  for (const text of damaged) {
    writeFileSync(path, text);
    const error = await t.throwsAsync(openAuditLog(path));
    t.true(isGatehouseError(error, 'AUDIT_INVALID'), String(error));
    // Kept as it is (the torn end is the evidence that records were lost), with what to do about it.
    t.regex(error?.message ?? '', /keep it as evidence \(gatehouse audit verify .* names the line\), move it aside and start a new log$/);
    t.is(readFileSync(path, 'utf8'), text, 'nothing is appended to a damaged log');
  }
});

test('record() under a burst of 10,000 events returns at once and all are written in order', async (t) => {
  const path = await tempLogPath(t);
  const log = await openAuditLog(path);
  const count = 10_000;
  for (let pid = 0; pid < count; pid += 1) {
    const returned: unknown = log.record({ type: 'exit', plugin: 'burst', pid, code: 0, signal: null });
    t.is(returned, undefined);
  }
  // Still synchronous: the writes cannot have completed yet, so record() did not wait for them.
  t.true(records(path).length < count);
  await log.close();

  t.deepEqual(await verifyAuditLog(path), { ok: true, records: count + 1 });
  t.deepEqual(records(path).slice(1).map((record) => record.pid), Array.from({ length: count }, (_, pid) => pid));
});

test.serial('a write failure reaches onError, and flush() and close() reject with it', async (t) => {
  if (process.platform !== 'linux') {
    t.pass('needs /proc/self/fd to close the log file under the writer');
    return;
  }
  const path = await tempLogPath(t);
  const failures: GatehouseError[] = [];
  let reported: () => void = () => {};
  const failureReported = new Promise<void>((resolve) => (reported = resolve));
  const log = await openAuditLog(path, {
    onError: (error) => {
      failures.push(error);
      reported();
    },
  });
  const real = realpathSync(path);
  const fd = Number(readdirSync('/proc/self/fd').find((entry) => {
    try {
      return readlinkSync(`/proc/self/fd/${entry}`) === real;
    } catch {
      return false;
    }
  }));
  closeSync(fd);
  // Re-occupies the freed descriptor number read-only (so the writer's next write fails with EBADF
  // and its close() closes nothing of anyone else's); opening takes the lowest free numbers first.
  const fillers: number[] = [];
  for (let next = openSync('/dev/null', 'r'); next !== fd; next = openSync('/dev/null', 'r')) {
    fillers.push(next);
    if (next > fd) throw new Error(`descriptor ${fd} was taken by something else`);
  }
  for (const filler of fillers) closeSync(filler);

  t.is(log.failure, undefined);
  log.record(oneOfEach[0] as AuditEvent);
  await failureReported;
  t.is(failures.length, 1);
  t.true(isGatehouseError(failures[0], 'AUDIT_WRITE_FAILED'));
  t.is(log.failure, failures[0], 'the log says it has failed, for launch() to refuse');
  t.true(isGatehouseError(await t.throwsAsync(log.flush()), 'AUDIT_WRITE_FAILED'));
  t.true(isGatehouseError(await t.throwsAsync(log.close()), 'AUDIT_WRITE_FAILED'));
});

test('a symlink at the log path is refused rather than followed', async (t) => {
  const path = await tempLogPath(t);
  const target = `${path}.target`;
  writeFileSync(target, '');
  symlinkSync(target, path);
  const error = await t.throwsAsync(openAuditLog(path));
  t.true(isGatehouseError(error, 'AUDIT_WRITE_FAILED'));
  t.is(readFileSync(target, 'utf8'), '');
});

test('an existing log writable by group or others is refused', async (t) => {
  const path = await tempLogPath(t);
  writeFileSync(path, '', { mode: 0o600 });
  chmodSync(path, 0o620);
  const error = await t.throwsAsync(openAuditLog(path));
  t.true(isGatehouseError(error, 'AUDIT_INVALID'));
});

const NOBODY = 65534;
const runningAsRoot = process.geteuid?.() === 0;

(runningAsRoot ? test : test.skip)('a log another user owns (0600, theirs) is refused and left untouched: they could rewrite it', async (t) => {
  const path = await tempLogPath(t);
  const theirs = await openAuditLog(path);
  await theirs.close();
  const before = readFileSync(path);
  chownSync(path, NOBODY, NOBODY);
  const error = await t.throwsAsync(openAuditLog(path));
  t.true(isGatehouseError(error, 'AUDIT_INVALID'));
  t.regex(error?.message ?? '', /owned by uid 65534/);
  t.deepEqual(readFileSync(path), before);
});

test('fields named like the chain fields cannot override seq, prev or hash', async (t) => {
  const path = await tempLogPath(t);
  const log = await openAuditLog(path);
  log.record({ ...oneOfEach[0], seq: 1, prev: '00', hash: '00', time: 'never' } as unknown as AuditEvent);
  await log.close();
  t.deepEqual(await verifyAuditLog(path), { ok: true, records: 2 });
});

test('an oversized or unserializable event leaves a record saying so; the chain stays valid', async (t) => {
  const path = await tempLogPath(t);
  const log = await openAuditLog(path);
  log.record({ type: 'launch', plugin: 'kv', pid: 1, argv: ['x'.repeat(MAX_LINE_BYTES)] });
  log.record({ type: 'launch', plugin: 'kv', pid: 1n as unknown as number, argv: [] });
  await log.close();
  t.deepEqual(await verifyAuditLog(path), { ok: true, records: 3 });
  t.like(records(path)[1], { type: 'record-too-large', originalType: 'launch' });
  t.like(records(path)[2], { type: 'record-unserializable', originalType: 'launch' });
});

test('records dropped on a full backlog are counted in the chain', async (t) => {
  const path = await tempLogPath(t);
  const log = await openAuditLog(path, { maxQueuedBytes: 2_000 });
  for (let pid = 0; pid < 100; pid += 1) log.record({ type: 'exit', plugin: 'kv', pid, code: 0, signal: null });
  await t.throwsAsync(log.flush(), { code: 'AUDIT_RECORDS_DROPPED' });
  log.record({ type: 'exit', plugin: 'kv', pid: 100, code: 0, signal: null });
  await log.close();

  t.true((await verifyAuditLog(path)).ok);
  const lines = records(path);
  const notices = lines.filter((record) => record.type === 'records-dropped');
  t.is(notices.length, 1);
  const written = lines.filter((record) => record.type === 'exit').length;
  t.is(written + Number(notices[0]?.count), 101);
});

test('flush() rejects with AUDIT_RECORDS_DROPPED when a record made since the last flush() was dropped for the backlog cap', async (t) => {
  // Unaudited action: a host awaiting flush() before it acts (the secrets server before it answers) went on when
  // its record had been dropped for a full backlog, which flush() left out of "every record made before it".
  const path = await tempLogPath(t);
  const log = await openAuditLog(path, { maxQueuedBytes: 2_000 });
  log.record({ type: 'exit', plugin: 'kv', pid: 0, code: 0, signal: null });
  await log.flush();
  for (let pid = 1; pid <= 100; pid += 1) log.record({ type: 'exit', plugin: 'kv', pid, code: 0, signal: null });
  const error = await t.throwsAsync(log.flush());
  t.true(isGatehouseError(error, 'AUDIT_RECORDS_DROPPED'), String(error));
  t.regex(error?.message ?? '', /[0-9]+ records? made since the last flush\(\) (was|were) dropped.*maxQueuedBytes/);
  // Told once: records made after it that fit are on disk when the next flush() resolves.
  log.record({ type: 'exit', plugin: 'kv', pid: 101, code: 0, signal: null });
  await log.flush();
  await log.close();
  t.true((await verifyAuditLog(path)).ok);
});

test('records dropped just before close() are counted in the chain, and close() says so', async (t) => {
  const path = await tempLogPath(t);
  const log = await openAuditLog(path, { maxQueuedBytes: 2_000 });
  for (let pid = 0; pid < 100; pid += 1) log.record({ type: 'exit', plugin: 'kv', pid, code: 0, signal: null });
  await t.throwsAsync(log.close(), { code: 'AUDIT_RECORDS_DROPPED' });
  t.true((await verifyAuditLog(path)).ok);
  const lines = records(path);
  const dropped = lines.filter((record) => record.type === 'records-dropped').reduce((sum, record) => sum + Number(record.count), 0);
  t.is(lines.filter((record) => record.type === 'exit').length + dropped, 100);
});

test('record() after close() is reported, not thrown', async (t) => {
  const path = await tempLogPath(t);
  let reported: GatehouseError | undefined;
  const log = await openAuditLog(path, { onError: (error) => (reported = error) });
  await log.close();
  t.notThrows(() => log.record(oneOfEach[0] as AuditEvent));
  await Promise.resolve();
  t.true(isGatehouseError(reported, 'AUDIT_WRITE_FAILED'));
  t.deepEqual(await verifyAuditLog(path), { ok: true, records: 1 });
});

test('a FIFO at the log path or the sealing-key file path is refused at once, not waited on', async (t) => {
  const path = await tempLogPath(t);
  execFileSync('mkfifo', [path]);
  const log = await t.throwsAsync(openAuditLog(path));
  t.true(isGatehouseError(log, 'AUDIT_INVALID'), String(log));
  t.regex(log?.message ?? '', /not a regular file/);
  const keyFile = `${path}.keys`;
  execFileSync('mkfifo', [keyFile]);
  const keys = await t.throwsAsync(openAuditLog(`${path}.other`, { sealing: { keyFile } }));
  t.true(isGatehouseError(keys, 'AUDIT_WRITE_FAILED'), String(keys));
  t.regex(keys?.message ?? '', /not a regular file/);
});

test('a log whose last two records are each as long as a line may be can be reopened', async (t) => {
  const path = await tempLogPath(t);
  const probe = await openAuditLog(`${path}.probe`);
  probe.record({ type: 'host', action: 'x', fields: { pad: '' } });
  await probe.close();
  const overhead = Buffer.byteLength(readFileSync(`${path}.probe`, 'utf8').split('\n')[1] as string);
  const log = await openAuditLog(path);
  for (let i = 0; i < 2; i += 1) log.record({ type: 'host', action: 'x', fields: { pad: 'a'.repeat(MAX_LINE_BYTES - overhead) } });
  await log.close();
  t.deepEqual(readFileSync(path, 'utf8').split('\n').slice(1, -1).map((line) => Buffer.byteLength(line)), [MAX_LINE_BYTES, MAX_LINE_BYTES]);
  await (await openAuditLog(path)).close();
  t.deepEqual(await verifyAuditLog(path), { ok: true, records: 4 });
});

test('an event of a type the log keeps for itself, of no type, or of an over-long one is recorded renamed; the log still verifies', async (t) => {
  const types: unknown[] = ['audit-log-opened', 'audit-log-reopened', 'audit-checkpoint', 'records-dropped', 'record-too-large', 'record-unserializable', 'record-invalid-type', '', undefined, 7, 'x'.repeat(2 * 1024 * 1024)];
  for (const type of types) {
    for (const sealed of [false, true]) {
      const path = await tempLogPath(t);
      const keyFile = `${path}.keys`;
      const log = await openAuditLog(path, sealed ? { sealing: { keyFile, everyRecords: 100 } } : {});
      log.record({ type, plugin: 'kv' } as unknown as AuditEvent);
      await log.close();
      const what = `${String(type).slice(0, 30)} ${sealed ? 'sealed' : 'unsealed'}`;
      const sealingKeys = sealed ? parseSealingKeys(readFileSync(keyFile, 'utf8')) : undefined;
      t.like(await verifyAuditLog(path, { sealingKeys: sealingKeys as SealingKey[] | undefined }), { ok: true }, what);
      const recorded = records(path)[1] as Record<string, unknown>;
      t.like(recorded, { type: 'record-invalid-type', plugin: 'kv' }, what);
      t.is(recorded.originalType, typeof type === 'string' ? type.slice(0, 64) : `(${typeof type})`, what);
    }
  }
});

/** A process's start time (clock ticks after boot, field 22 of /proc/PID/stat): with its pid, it names one process for good. */
function startTime(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] as string;
}

test('a second writer on one log is refused while the first holds it, in this process or another; one that died holds nothing', async (t) => {
  if (process.platform !== 'linux') {
    t.pass('needs /proc to tell a live writer from a dead one');
    return;
  }
  const path = await tempLogPath(t);
  const first = await openAuditLog(path);
  const again = await t.throwsAsync(openAuditLog(path));
  t.true(isGatehouseError(again, 'AUDIT_IN_USE'), String(again));
  t.regex(again?.message ?? '', new RegExp(`in use by process ${process.pid} \\(this one\\)`));
  first.record(oneOfEach[0] as AuditEvent);
  await first.close();
  t.deepEqual(await verifyAuditLog(path), { ok: true, records: 2 });
  // Another live process (our parent) holds it.
  const parent = `${path}.writer-${process.ppid}-${startTime(process.ppid)}`;
  writeFileSync(parent, '', { mode: 0o600 }); // as a writer makes its mark
  const other = await t.throwsAsync(openAuditLog(path));
  t.true(isGatehouseError(other, 'AUDIT_IN_USE'), String(other));
  t.regex(other?.message ?? '', new RegExp(`in use by process ${process.ppid}\\b`));
  rmSync(parent);
  // Writers that died without closing: a pid that is gone, and one now reused by another process.
  const dead = [`${path}.writer-4194305-1`, `${path}.writer-${process.ppid}-1`];
  for (const file of dead) writeFileSync(file, '', { mode: 0o600 });
  await (await openAuditLog(path)).close();
  t.deepEqual(readdirSync(dirname(path)).filter((name) => name.includes('.writer-')), [], 'stale marks are removed, ours on close');
  t.deepEqual(await verifyAuditLog(path), { ok: true, records: 3 });
});

test('a writer in another PID namespace or on another machine (a host sharing the directory) holds the log while it refreshes its mark; one whose mark has aged is gone', async (t) => {
  if (process.platform !== 'linux') {
    t.pass('needs /proc to tell a live writer from a dead one');
    return;
  }
  const path = await tempLogPath(t);
  const ours = await pidScope();
  // Its pid names nobody here, which says nothing about whether it writes there.
  const elsewhere = `${path}.writer-4194305-1-1.${'0'.repeat(32)}`;
  writeFileSync(elsewhere, '', { mode: 0o600 }); // as a writer makes its mark
  const refused = await t.throwsAsync(openAuditLog(path));
  t.true(isGatehouseError(refused, 'AUDIT_IN_USE'), String(refused));
  t.regex(refused?.message ?? '', /in use by process 4194305 in another PID namespace or on another machine, whose mark was refreshed \d+ s ago/);
  t.true(existsSync(elsewhere), "a live writer's mark stays");
  // Not refreshed for longer than a live writer lets it age: its writer is gone.
  const old = new Date(Date.now() - 2 * LEASE_EXPIRY_MS);
  utimesSync(elsewhere, old, old);
  const log = await openAuditLog(path);
  t.deepEqual(
    readdirSync(dirname(path)).filter((name) => name.includes('.writer-')),
    [`${basename(path)}.writer-${process.pid}-${startTime(process.pid)}-${ours}`],
    'the stale mark is gone; ours names our scope',
  );
  await log.close();
});

test('re-opening a log its last writer never closed names that writer: its last records may be lost and its plugins died with it', async (t) => {
  const path = await tempLogPath(t);
  await (await openAuditLog(path)).close();
  const clean = await openAuditLog(path);
  await clean.close();
  // What a host killed with SIGKILL leaves beside the log: its mark, naming a process that is gone.
  const dead = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).toString());
  writeFileSync(`${path}.writer-${dead}-1`, '', { mode: 0o600 });
  await (await openAuditLog(path)).close();
  const reopened = records(path).filter((record) => record.type === 'audit-log-reopened');
  t.false('notClosedBy' in (reopened[0] ?? {}), 'the writer before it closed the log');
  t.deepEqual(reopened[1]?.notClosedBy, [dead]);
  t.like(await verifyAuditLog(path), { ok: true });
});

test("another user's files named like writer marks hold nothing: in a shared directory (sticky, as /tmp) they cannot keep a host from its log", async (t) => {
  if (process.platform !== 'linux' || !runningAsRoot) {
    t.pass('needs /proc, and root to make files as another user');
    return;
  }
  const path = await tempLogPath(t);
  chmodSync(dirname(path), 0o1777);
  await (await openAuditLog(path)).close();
  // Marks only another user made: one naming a process that runs for good (pid 1), one "refreshed" far in the future in another scope, one naming a dead writer.
  const planted = [`${path}.writer-1-${startTime(1)}`, `${path}.writer-4194305-1-1.${'0'.repeat(32)}`, `${path}.writer-4194306-1`];
  const future = new Date(Date.UTC(2100, 0, 1));
  for (const file of planted) {
    writeFileSync(file, '');
    chownSync(file, NOBODY, NOBODY);
    utimesSync(file, future, future);
  }
  const log = await openAuditLog(path);
  await log.close();
  t.deepEqual(planted.filter((file) => !existsSync(file)), [], "another user's files are left as they are");
  const reopened = records(path).filter((record) => record.type === 'audit-log-reopened');
  t.false('notClosedBy' in (reopened.at(-1) ?? {}), 'nor taken for writers that never closed the log');
  t.like(await verifyAuditLog(path), { ok: true });
});

test('a writer whose mark was taken over (its lease lapsed while it was paused, and another host took the log) stops rather than fork the chain', async (t) => {
  if (process.platform !== 'linux') {
    t.pass('needs /proc for writer marks');
    return;
  }
  const path = await tempLogPath(t);
  const errors: GatehouseError[] = [];
  const first = await openAuditLog(path, { onError: (error) => errors.push(error) });
  const [mark] = readdirSync(dirname(path)).filter((name) => name.includes('.writer-'));
  // What a host in another container does with a mark not refreshed for LEASE_EXPIRY_MS (this one's was frozen): removes it, and writes.
  rmSync(join(dirname(path), mark as string));
  const second = await openAuditLog(path);
  second.record(oneOfEach[0] as AuditEvent);
  // Its mark has the same name here (same process): only its identity tells them apart.
  t.true(existsSync(join(dirname(path), mark as string)));
  // The first writer was frozen past the lease (that is how its mark lapsed): its monotonic clock moved on meanwhile.
  const now = performance.now.bind(performance);
  performance.now = () => now() + 2 * LEASE_EXPIRY_MS;
  try {
    first.record(oneOfEach[1] as AuditEvent);
    await t.throwsAsync(first.flush());
  } finally {
    performance.now = now;
  }
  await second.close();
  await first.close().catch(() => undefined);
  t.true(errors.some((error) => isGatehouseError(error, 'AUDIT_WRITE_FAILED') && /took the log over/.test(error.message)), errors.map(String).join('; '));
  t.like(await verifyAuditLog(path), { ok: true, records: 3 });
});

test('a log whose directory another user can write, or any directory above it, is refused before anything is written: they could rename it away', async (t) => {
  const path = await tempLogPath(t);
  const dir = dirname(path);
  // Attack: another user renames the log aside (write access to its directory is enough) and the host starts a
  // fresh chain that verifies on its own; only an anchor kept elsewhere would show it.
  for (const mode of [0o777, 0o775, 0o757]) {
    chmodSync(dir, mode);
    const refused = await t.throwsAsync(openAuditLog(path));
    t.true(isGatehouseError(refused, 'DIRECTORY_WRITABLE_BY_OTHERS'), String(refused));
    t.regex(refused?.message ?? '', /could rename the log away.*a directory only this user \(uid \d+\) or root can write/);
    t.false(existsSync(path), `nothing was written (mode ${mode.toString(8)})`);
  }
  // Sticky (as /tmp): others may add entries, not rename ours.
  chmodSync(dir, 0o1777);
  await (await openAuditLog(path)).close();
  chmodSync(dir, 0o700);
  t.like(await verifyAuditLog(path), { ok: true });
});

test("another user's hard link to a file of the log's owner or root is not a writer mark: a writer's mark is never readable or writable by others", async (t) => {
  if (process.platform !== 'linux' || !runningAsRoot) {
    t.pass('needs /proc, and root to act as another user');
    return;
  }
  const path = await tempLogPath(t);
  chmodSync(dirname(path), 0o1777);
  await (await openAuditLog(path)).close();
  // Attack: a root-owned file another user may read and write (the kernel's protected_hardlinks then lets them link it),
  // linked under a mark's name naming pid 1: owned by root, it passed for a writer's mark and the host was refused its log.
  const shared = join(dirname(path), 'shared-file');
  writeFileSync(shared, '');
  chmodSync(shared, 0o666);
  const mark = `${path}.writer-1-${startTime(1)}`;
  try {
    execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'ln', shared, mark], { stdio: 'ignore' });
  } catch {
    t.pass('skipped: this kernel does not let another user link that file (fs.protected_hardlinks), or no setpriv');
    return;
  }
  t.is(statSync(mark).uid, 0, 'the link is owned by root');
  const log = await openAuditLog(path);
  await log.close();
  t.true(existsSync(mark), "another user's link is left as it is");
  t.like(await verifyAuditLog(path), { ok: true });
});

test('a host that exits without closing its log (process.exit after a refusal, say) still has every record it made on disk, sealed', async (t) => {
  const path = await tempLogPath(t);
  const keyFile = join(dirname(path), 'keys');
  const auditIndex = new URL('../../src/audit/index.js', import.meta.url).href;
  // The record is made more than a second after the open, so the writer checks its mark (a file read) before it
  // writes: an exit in that window lost the record (a refusal logged just before process.exit(1)).
  const script = `import { openAuditLog } from ${JSON.stringify(auditIndex)};
const log = await openAuditLog(${JSON.stringify(path)}, { sealing: { keyFile: ${JSON.stringify(keyFile)}, everyRecords: 100 } });
await new Promise((resolve) => setTimeout(resolve, 1200));
log.record({ type: 'refusal', plugin: 'kv', code: 'SIZE_MISMATCH', message: 'changed after signing' });
process.exit(1);`;
  t.throws(() => execFileSync(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' }));
  t.like(records(path).find((record) => record.type === 'refusal'), { plugin: 'kv', code: 'SIZE_MISMATCH' });
  const sealingKeys = parseSealingKeys(readFileSync(keyFile, 'utf8')) as SealingKey[];
  t.like(await verifyAuditLog(path, { sealingKeys }), { ok: true });
  t.is(records(path).at(-1)?.type, 'audit-checkpoint', 'what the process left behind is sealed');
});

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { openAuditLog } from '../../src/audit/index.js';
import { auditCommand } from '../../src/cli/audit.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: readonly string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await auditCommand(argv, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  });
  return { code, stdout, stderr };
}

async function logWithRecords(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-audit-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'audit.log');
  const log = await openAuditLog(path);
  log.record({ type: 'kill', plugin: 'kv', pid: 7, method: 'SIGTERM' });
  log.record({ type: 'exit', plugin: 'kv', pid: 7, code: null, signal: 'SIGTERM' });
  await log.close();
  return path;
}

/** A sealed log (checkpoint every `everyRecords`) holding one kill record, still open: the caller closes or flushes it. */
async function sealedLogWithOneRecord(t: ExecutionContext, everyRecords: number) {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-audit-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'audit.log');
  const keyFile = join(dir, 'keys');
  const log = await openAuditLog(path, { sealing: { keyFile, everyRecords } });
  log.record({ type: 'kill', plugin: 'kv', pid: 7, method: 'SIGTERM' });
  return { dir, path, keyFile, log };
}

test('audit verify prints the record count, log id and last hash and exits 0 for an intact log', async (t) => {
  const path = await logWithRecords(t);
  const lines = (await readFile(path, 'utf8')).split('\n');
  const logId = (JSON.parse(lines[0] as string) as { logId: string }).logId;
  const lastHash = createHash('sha256').update(lines[2] as string).digest('hex');
  t.deepEqual(await run(['verify', path]), {
    code: 0,
    stdout: `ok: 3 records\nlog id: ${logId}\nlast hash: ${lastHash}\nsealed: no (the log has no checkpoints)\n`,
    stderr: '',
  });
});

test('audit verify names the first broken line and exits 1', async (t) => {
  const path = await logWithRecords(t);
  const lines = (await readFile(path, 'utf8')).split('\n');
  lines.splice(1, 1);
  writeFileSync(path, lines.join('\n'));
  const result = await run(['verify', path]);
  t.is(result.code, 1);
  t.is(result.stdout, 'broken at line 2: seq 3 where 2 was expected (a record was deleted or reordered) [AUDIT_INVALID]\n');
});

test('audit verify of a missing file exits 1 with the reason on stderr', async (t) => {
  const result = await run(['verify', join(tmpdir(), 'gatehouse-no-such-audit.log')]);
  t.is(result.code, 1);
  t.is(result.stdout, '');
  t.regex(result.stderr, /^gatehouse audit: audit log .* cannot be opened/);
});

test('audit verify and audit anchor of a FIFO exit 1 at once with FILE_NOT_REGULAR', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-audit-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'plugins.audit');
  execFileSync('mkfifo', [fifo]);
  for (const action of ['verify', 'anchor']) {
    const result = await run([action, fifo]);
    t.is(result.code, 1, action);
    t.regex(result.stderr, /^gatehouse audit: audit log .* cannot be opened: .*not a regular file \[FILE_NOT_REGULAR\]\n$/, action);
  }
});

test('usage errors exit 2', async (t) => {
  const cases = [
    [],
    ['frobnicate'],
    ['verify'],
    ['verify', 'a.log', 'b.log'],
    ['verify', '--strict'],
    ['verify', 'a.log', '--records', '0'],
    ['verify', 'a.log', '--records', '1.5'],
    ['verify', 'a.log', '--log-id', 'xyz'],
    ['verify', 'a.log', '--last-hash', 'ab'],
    ['verify', 'a.log', '--out', 'x'],
    ['anchor', 'a.log', '--records', '3'],
    ['verify', 'a.log', '--records', '3', '--records', '4'],
  ];
  for (const argv of cases) {
    const result = await run(argv);
    t.is(result.code, 2, JSON.stringify(argv));
    t.regex(result.stderr, /usage: gatehouse audit verify FILE/);
  }
});

test('--help prints the usage and exits 0', async (t) => {
  const result = await run(['--help']);
  t.is(result.code, 0);
  t.regex(result.stdout, /^Usage: gatehouse audit verify FILE/);
  t.regex(result.stdout, /--sealing-key KEYS/);
});

test('audit anchor prints an anchor that audit verify --anchor accepts while the log only grows', async (t) => {
  const path = await logWithRecords(t);
  const anchored = await run(['anchor', path]);
  t.is(anchored.code, 0);
  t.regex(anchored.stdout, /^gatehouse-audit-anchor v1 [0-9a-f]{32} 3 [0-9a-f]{64}\n$/);
  const anchorFile = join(dirname(path), 'anchor');
  t.is((await run(['anchor', path, '--out', anchorFile])).code, 0);
  t.is(await readFile(anchorFile, 'utf8'), anchored.stdout);
  const log = await openAuditLog(path);
  log.record({ type: 'exit', plugin: 'kv', pid: 8, code: 0, signal: null });
  await log.close();
  const verified = await run(['verify', path, '--anchor', anchorFile]);
  t.is(verified.code, 0, verified.stdout);
  t.regex(verified.stdout, /^ok: 5 records\n/);
});

test('audit verify against an anchor fails with AUDIT_ANCHOR_MISMATCH when the tail is cut at a line boundary', async (t) => {
  const path = await logWithRecords(t);
  const anchorFile = join(dirname(path), 'anchor');
  await run(['anchor', path, '--out', anchorFile]);
  const lines = (await readFile(path, 'utf8')).split('\n');
  writeFileSync(path, lines.slice(0, 2).map((line) => `${line}\n`).join(''));
  t.is((await run(['verify', path])).code, 0, 'without the anchor the cut log verifies');
  const result = await run(['verify', path, '--anchor', anchorFile]);
  t.is(result.code, 1);
  t.regex(result.stdout, /^broken at line 3: 2 records where the anchor expects at least 3 \(records were cut off the end\) \[AUDIT_ANCHOR_MISMATCH\]\n$/);
});

test('audit verify --log-id fails on a log replaced by a fresh one', async (t) => {
  const path = await logWithRecords(t);
  const logId = (JSON.parse((await readFile(path, 'utf8')).split('\n')[0] as string) as { logId: string }).logId;
  const fresh = await logWithRecords(t);
  writeFileSync(path, await readFile(fresh));
  const result = await run(['verify', path, '--log-id', logId, '--records', '3']);
  t.is(result.code, 1);
  t.regex(result.stdout, /^broken at line 1: log id [0-9a-f]{32} where the anchor expects [0-9a-f]{32} \(the file was replaced by another log\) \[AUDIT_ANCHOR_MISMATCH\]/);
});

test('audit verify --sealing-key checks a sealed log and reports what is sealed', async (t) => {
  const { dir, path, keyFile, log } = await sealedLogWithOneRecord(t, 2);
  await log.close();
  const result = await run(['verify', path, '--sealing-key', keyFile, '--require-sealed']);
  t.is(result.code, 0, result.stdout);
  t.regex(result.stdout, /\nsealed: records 1 to 3; not sealed yet: 0 after it; 1 segment\(s\) \(0 restart\(s\)\), first keys from the sealing-key file\n$/);
  const other = join(dir, 'other.log');
  const otherLog = await openAuditLog(other, { sealing: { keyFile: join(dir, 'other-keys'), everyRecords: 2 } });
  await otherLog.close();
  writeFileSync(path, await readFile(other));
  const replaced = await run(['verify', path, '--sealing-key', keyFile]);
  t.is(replaced.code, 1);
  t.regex(replaced.stdout, /the sealing-key file has no key for log .* \[AUDIT_SEAL_INVALID\]/);
});

test('audit verify --sealing-key notes a torn last key line and verifies with the whole ones', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-audit-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'audit.log');
  const keyFile = join(dir, 'keys');
  const log = await openAuditLog(path, { sealing: { keyFile, everyRecords: 2 } });
  await log.close();
  const keys = await readFile(keyFile, 'utf8');
  writeFileSync(keyFile, `${keys}${keys.slice(0, 50)}`);
  const result = await run(['verify', path, '--sealing-key', keyFile, '--require-sealed']);
  t.is(result.code, 0, result.stdout);
  t.is(result.stderr, `gatehouse audit: note: ${keyFile} line 2 is torn (a key line cut short by a crash or a full disk): no record can have used it; skipped\n`);
});

test('a malformed anchor or sealing-key file is refused with AUDIT_INVALID', async (t) => {
  const path = await logWithRecords(t);
  const bad = join(dirname(path), 'bad');
  writeFileSync(bad, 'not an anchor\n');
  const anchor = await run(['verify', path, '--anchor', bad]);
  t.is(anchor.code, 1);
  t.regex(anchor.stderr, /is not an audit anchor: .* \[AUDIT_INVALID\]/);
  const keys = await run(['verify', path, '--sealing-key', bad]);
  t.is(keys.code, 1);
  t.regex(keys.stderr, /is not an audit sealing-key file: .* \[AUDIT_INVALID\]/);
});

test('audit verify --require-sealed fails while records wait for their checkpoint', async (t) => {
  const { path, keyFile, log } = await sealedLogWithOneRecord(t, 100);
  await log.flush();
  t.is((await run(['verify', path, '--sealing-key', keyFile])).code, 0);
  const result = await run(['verify', path, '--sealing-key', keyFile, '--require-sealed']);
  t.is(result.code, 1);
  t.regex(result.stdout, /not sealed yet: 2 after it;.*\nnot sealed: 2 record\(s\) after the last checkpoint \[AUDIT_SEAL_INVALID\]\n$/);
  // A run that fails does not open with "ok": a reader who stops at the first line must not take it for a pass.
  t.regex(result.stdout, /^chain intact, but not all sealed: 2 records\n/);
  await log.close();
  t.is((await run(['verify', path, '--sealing-key', keyFile, '--require-sealed'])).code, 0);
});

test('audit verify --json prints one JSON object an auditor\'s tooling can read: the report, the broken line, or the error', async (t) => {
  const { dir, path, keyFile, log } = await sealedLogWithOneRecord(t, 2);
  await log.close();
  const lines = (await readFile(path, 'utf8')).split('\n');
  const logId = (JSON.parse(lines[0] as string) as { logId: string }).logId;

  const ok = await run(['verify', path, '--sealing-key', keyFile, '--json']);
  t.is(ok.code, 0);
  t.like(JSON.parse(ok.stdout), {
    ok: true,
    records: 3,
    logId,
    lastHash: createHash('sha256').update(lines[2] as string).digest('hex'),
    sealing: { segmentCount: 1, sealedSegments: 1, trustedSegments: 1, sealedThrough: 3, unsealed: 0 },
  });

  writeFileSync(path, [lines[0], lines[2], ''].join('\n'));
  const broken = await run(['verify', path, '--json']);
  t.is(broken.code, 1);
  t.deepEqual(JSON.parse(broken.stdout), { ok: false, line: 2, code: 'AUDIT_INVALID', reason: 'seq 3 where 2 was expected (a record was deleted or reordered)' });

  const missing = await run(['verify', join(dir, 'gone.log'), '--json']);
  t.is(missing.code, 1);
  t.like(JSON.parse(missing.stdout), { ok: false, code: 'FILE_NOT_FOUND' });
  t.is(missing.stderr, '');
});

test('audit verify --require-sealed --json names the first record not sealed yet', async (t) => {
  const { path, keyFile, log } = await sealedLogWithOneRecord(t, 100);
  await log.flush();
  const result = await run(['verify', path, '--sealing-key', keyFile, '--require-sealed', '--json']);
  await log.close();
  t.is(result.code, 1);
  t.like(JSON.parse(result.stdout), { ok: false, line: 1, code: 'AUDIT_SEAL_INVALID', records: 2, sealing: { sealedThrough: 0, unsealed: 2 } });
});

test('audit verify --require-sealed on a log never sealed says that no segment has a key, not that records wait for a checkpoint', async (t) => {
  const path = await logWithRecords(t);
  const result = await run(['verify', path, '--require-sealed']);
  t.is(result.code, 1);
  t.regex(result.stdout, /\nnot sealed: 1 of 1 segment\(s\) opened without a sealing key \[AUDIT_SEAL_INVALID\]\n$/);
});

test('audit show prints what ran, from the records it verified: who opened the log, each plugin from its verdict to its end, each refusal; nothing of a log that does not verify', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-audit-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'audit.log');
  const sealed = '/var/cache/gatehouse/seal/gatehouse-seal-x';
  const first = await openAuditLog(path);
  first.record({ type: 'verification', plugin: 'kv', sha256: 'a'.repeat(64), keyIds: ['K1', 'K2'], result: 'accepted', manifestVersion: 3, manifestPath: '/srv/p/manifest.json', version: '1.2.0', sealedPath: sealed });
  first.record({ type: 'launch', plugin: 'kv', pid: 4001, argv: [`${sealed}/plugin/kv`], uid: 65534, gid: 65534 });
  first.record({ type: 'connected', plugin: 'kv', pid: 4001, peerCertificateSha256: 'c'.repeat(64) });
  first.record({ type: 'kill', plugin: 'kv', pid: 4001, method: 'shutdown' });
  first.record({ type: 'exit', plugin: 'kv', pid: 4001, code: 0, signal: null, stoppedByHost: true });
  // A name is the host's words, but may hold what a plugin chose: it must not drive the terminal.
  first.record({ type: 'launch', plugin: 'evil\u001b[2J', pid: 4002, argv: ['/opt/evil'] });
  first.record({ type: 'exit', plugin: 'evil\u001b[2J', pid: 4002, code: null, signal: 'SIGKILL', stoppedByHost: false });
  first.record({ type: 'refusal', plugin: 'kv', code: 'DIGEST_MISMATCH', message: 'changed after signing', manifestPath: '/srv/p/manifest.json', file: '/srv/p/kv', found: `SHA-256 ${'b'.repeat(64)}`, signed: 'a'.repeat(64) });
  await first.close();
  // A host killed with SIGKILL leaves its mark: the next writer names it.
  const dead = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).toString());
  writeFileSync(`${path}.writer-${dead}-1`, '', { mode: 0o600 }); // as a writer makes its mark
  await (await openAuditLog(path)).close();

  const shown = await run(['show', path]);
  t.is(shown.code, 0, shown.stderr);
  const lines = shown.stdout.split('\n');
  t.regex(lines[0] ?? '', /^ok: 10 records$/);
  const body = lines.slice(lines.findIndex((line) => / record 1: log opened by pid \d+/.test(line)));
  t.regex(body[0] ?? '', /record 1: log opened by pid \d+.* \(uid \d+, gid \d+\) on \S+/);
  t.regex(body[1] ?? '', new RegExp(
    `record 3: kv ran as pid 4001 \\(uid 65534, gid 65534\\); verified sha256 ${'a'.repeat(64)}, signed by K1, K2, manifest version 3, entry version 1\\.2\\.0 \\(/srv/p/manifest\\.json\\); ` +
      `connected \\S+, certificate sha256 ${'c'.repeat(64)}; shutdown sent \\S+; exited with code 0 \\S+, the host had asked it to stop$`,
  ));
  t.regex(body[2] ?? '', /record 7: evil\\u001b\[2J ran as pid 4002; not verified by a manifest \(launch\(\)\); killed by SIGKILL \S+, not asked to stop by the host$/);
  t.false(shown.stdout.includes('\u001b'), 'no escape reaches the terminal');
  t.regex(body[3] ?? '', new RegExp(`record 9: kv refused: DIGEST_MISMATCH \\(/srv/p/kv: SHA-256 ${'b'.repeat(64)}, signed ${'a'.repeat(64)}\\): changed after signing$`));
  t.regex(body[4] ?? '', new RegExp(`record 10: log reopened by pid \\d+.*; not closed by pid ${dead}: its last records may be lost, and its plugins died with it$`));

  const json = await run(['show', path, '--json']);
  const parsed = JSON.parse(json.stdout) as { report: { ok: boolean; records: number }; timeline: { runs: Array<Record<string, unknown>>; refusals: unknown[]; segments: unknown[] } };
  t.like(parsed.report, { ok: true, records: 10 });
  t.like(parsed.timeline.runs[0], { plugin: 'kv', pid: 4001, uid: 65534, verified: { sha256: 'a'.repeat(64), keyIds: ['K1', 'K2'] }, exit: { code: 0, stoppedByHost: true } });
  t.is(parsed.timeline.refusals.length, 1);
  t.is(parsed.timeline.segments.length, 2);

  // One record edited: the log says nothing an auditor can rely on, so nothing of it is shown.
  const text = await readFile(path, 'utf8');
  writeFileSync(path, text.replace('"pid":4001', '"pid":4003'));
  const broken = await run(['show', path]);
  t.is(broken.code, 1);
  t.regex(broken.stdout, /^broken at line 3: .*\nnothing shown: a log that does not verify says nothing an auditor can rely on\n$/);
});

test('audit verify names --sealing-key when the file it names cannot be read: the log is not the file missing', async (t) => {
  const path = await logWithRecords(t);
  const result = await run(['verify', path, '--sealing-key', join(dirname(path), 'no-such-keys')]);
  t.is(result.code, 1);
  t.regex(result.stderr, /^gatehouse audit: --sealing-key .*no-such-keys: .* \[FILE_NOT_FOUND\]\n$/);
});

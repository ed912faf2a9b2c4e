import { execFile, execFileSync } from 'node:child_process';
import { symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { isGatehouseError } from '../../src/errors.js';
import { checkAuditLog, MAX_LINE_BYTES, MAX_REPORTED_SEGMENTS, openAuditLog, verifyAuditLog } from '../../src/audit/index.js';
import { genesisPrev, sealLine, sha256Hex } from '../../src/audit/verify-log.js';

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-audit-verify-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A valid log of a genesis record and `count` exit records (pid 1..count): `count + 1` lines. */
async function validLog(t: ExecutionContext, count = 5): Promise<{ path: string; lines: string[] }> {
  const path = join(await tempDir(t), 'audit.log');
  const log = await openAuditLog(path);
  for (let pid = 1; pid <= count; pid += 1) log.record({ type: 'exit', plugin: 'kv', pid, code: 0, signal: null });
  await log.close();
  const lines = (await readFile(path, 'utf8')).split('\n').slice(0, -1);
  t.is(lines.length, count + 1);
  return { path, lines };
}

function rewrite(path: string, lines: readonly string[]): void {
  writeFileSync(path, lines.map((line) => `${line}\n`).join(''));
}

test('a valid log verifies with its record count', async (t) => {
  const { path } = await validLog(t);
  t.deepEqual(await verifyAuditLog(path), { ok: true, records: 6 });
});

test('an edited record is caught at that line by its own hash', async (t) => {
  const { path, lines } = await validLog(t);
  lines[3] = (lines[3] as string).replace('"pid":3', '"pid":4');
  rewrite(path, lines);
  t.like(await verifyAuditLog(path), { ok: false, line: 4, reason: 'record does not match its hash (edited)' });
});

test('an edited record whose own hash was recomputed is caught by the next line', async (t) => {
  const { path, lines } = await validLog(t);
  const edited = JSON.parse((lines[3] as string).replace('"pid":3', '"pid":4')) as Record<string, unknown>;
  delete edited.hash;
  lines[3] = sealLine(JSON.stringify(edited));
  rewrite(path, lines);
  const result = await verifyAuditLog(path);
  t.like(result, { ok: false, line: 5 });
  t.regex(result.ok ? '' : result.reason, /prev does not match/);
});

test('a deleted record is caught at the line where it is missing', async (t) => {
  const { path, lines } = await validLog(t);
  lines.splice(2, 1);
  rewrite(path, lines);
  t.like(await verifyAuditLog(path), { ok: false, line: 3, reason: 'seq 4 where 3 was expected (a record was deleted or reordered)' });
});

test('two reordered records are caught at the first of them', async (t) => {
  const { path, lines } = await validLog(t);
  [lines[2], lines[3]] = [lines[3] as string, lines[2] as string];
  rewrite(path, lines);
  t.like(await verifyAuditLog(path), { ok: false, line: 3 });
});

test('a line truncated in the middle is caught at that line', async (t) => {
  const { path, lines } = await validLog(t);
  lines[2] = (lines[2] as string).slice(0, 40);
  rewrite(path, lines);
  t.like(await verifyAuditLog(path), { ok: false, line: 3, reason: 'not valid JSON (truncated or damaged)' });
});

test('a last line without its newline (a torn write) is caught', async (t) => {
  const { path, lines } = await validLog(t);
  writeFileSync(path, `${lines.join('\n')}`);
  t.like(await verifyAuditLog(path), { ok: false, line: 6, reason: 'last line has no newline (truncated write)' });
});

test('a log without its genesis record is refused at line 1', async (t) => {
  const { path, lines } = await validLog(t);
  rewrite(path, lines.slice(1));
  const result = await verifyAuditLog(path);
  t.like(result, { ok: false, line: 1 });
  t.regex(result.ok ? '' : result.reason, /missing genesis record/);
  writeFileSync(path, '');
  t.like(await verifyAuditLog(path), { ok: false, line: 1, reason: 'empty log: missing genesis record' });
});

test('two logs spliced together are caught at the second genesis record', async (t) => {
  const first = await validLog(t, 2);
  const second = await validLog(t, 2);
  rewrite(first.path, [...first.lines, ...second.lines]);
  t.like(await verifyAuditLog(first.path), { ok: false, line: 4, reason: 'a second "audit-log-opened" record' });
});

test('an over-long line is refused without reading it whole', async (t) => {
  const { path, lines } = await validLog(t, 1);
  writeFileSync(path, `${lines.join('\n')}\n${'x'.repeat(MAX_LINE_BYTES + 100)}`);
  t.like(await verifyAuditLog(path), { ok: false, line: 3, reason: `longer than ${MAX_LINE_BYTES} bytes` });
});

test('a missing file is FILE_NOT_FOUND', async (t) => {
  const error = await t.throwsAsync(verifyAuditLog(join(await tempDir(t), 'absent.log')));
  t.true(isGatehouseError(error, 'FILE_NOT_FOUND'));
});

test('a FIFO or a symlink at the log path is refused at once (FILE_NOT_REGULAR), not waited on or followed', async (t) => {
  const dir = await tempDir(t);
  execFileSync('mkfifo', [join(dir, 'fifo.log')]);
  t.true(isGatehouseError(await t.throwsAsync(checkAuditLog(join(dir, 'fifo.log'))), 'FILE_NOT_REGULAR'));
  const { path } = await validLog(t);
  symlinkSync(path, join(dir, 'link.log'));
  t.true(isGatehouseError(await t.throwsAsync(checkAuditLog(join(dir, 'link.log'))), 'FILE_NOT_REGULAR'));
});

test('any single-byte change anywhere in a valid log is detected', async (t) => {
  const { path } = await validLog(t, 3);
  const original = await readFile(path);
  const damaged = join(await tempDir(t), 'damaged.log');
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: original.length - 1 }), fc.integer({ min: 1, max: 255 }), async (index, delta) => {
      const bytes = Buffer.from(original);
      bytes[index] = ((bytes[index] as number) + delta) % 256;
      writeFileSync(damaged, bytes);
      return !(await verifyAuditLog(damaged)).ok;
    }),
    { numRuns: 300 },
  );
  t.pass();
});

// The three attacks of issue 11 item 15. Each one verified "ok" before anchors existed (first assertion);
// kept elsewhere, the log id, record count and hash catch them.

/** The log id and the hash of the last line, as an auditor would have kept them. */
function anchorOf(lines: readonly string[]): { logId: string; records: number; lastHash: string } {
  const logId = (JSON.parse(lines[0] as string) as { logId: string }).logId;
  return { logId, records: lines.length, lastHash: sha256Hex(lines[lines.length - 1] as string) };
}

/** Rewrites every line from index `from` on with changed pids, fixing every hash and prev: a consistent chain. */
function rewriteFrom(lines: readonly string[], from: number): string[] {
  const out = lines.slice(0, from);
  for (const line of lines.slice(from)) {
    const record = JSON.parse(line) as Record<string, unknown>;
    delete record.hash;
    record.pid = 999;
    record.prev = sha256Hex(out[out.length - 1] as string);
    out.push(sealLine(JSON.stringify(record)));
  }
  return out;
}

test('attack: a tail cut at a line boundary verifies on its own, and fails against the anchor', async (t) => {
  const { path, lines } = await validLog(t);
  const anchor = anchorOf(lines);
  rewrite(path, lines.slice(0, 4));
  t.deepEqual(await verifyAuditLog(path), { ok: true, records: 4 });
  t.like(await verifyAuditLog(path, { anchor }), {
    ok: false,
    line: 5,
    code: 'AUDIT_ANCHOR_MISMATCH',
    reason: '4 records where the anchor expects at least 6 (records were cut off the end)',
  });
  t.like(await verifyAuditLog(path, { anchor: { lastHash: anchor.lastHash } }), { ok: false, line: 4, code: 'AUDIT_ANCHOR_MISMATCH' });
});

test('attack: a chain rewritten from some record on verifies on its own, and fails against the anchor', async (t) => {
  const { path, lines } = await validLog(t);
  const anchor = anchorOf(lines);
  rewrite(path, rewriteFrom(lines, 3));
  t.deepEqual(await verifyAuditLog(path), { ok: true, records: 6 });
  const result = await verifyAuditLog(path, { anchor });
  t.like(result, { ok: false, line: 6, code: 'AUDIT_ANCHOR_MISMATCH' });
  t.regex(result.ok ? '' : result.reason, /where the anchor expects .* \(the log was rewritten from this line or before\)/);
});

test('attack: a file replaced by a fresh log verifies on its own, and fails against the anchor', async (t) => {
  const { path, lines } = await validLog(t);
  const anchor = anchorOf(lines);
  const fresh = await validLog(t);
  writeFileSync(path, await readFile(fresh.path));
  t.deepEqual(await verifyAuditLog(path), { ok: true, records: 6 });
  t.like(await verifyAuditLog(path, { anchor }), { ok: false, line: 1, code: 'AUDIT_ANCHOR_MISMATCH' });
  t.like(await verifyAuditLog(path, { anchor: { logId: anchor.logId } }), { ok: false, line: 1, code: 'AUDIT_ANCHOR_MISMATCH' });
});

test('a log that grew after its anchor was taken still matches it', async (t) => {
  const { path, lines } = await validLog(t);
  const anchor = anchorOf(lines);
  const log = await openAuditLog(path);
  log.record({ type: 'exit', plugin: 'kv', pid: 9, code: 0, signal: null });
  await log.close();
  const report = await checkAuditLog(path, { anchor });
  t.like(report, { ok: true, logId: anchor.logId, records: 8 });
  t.is(report.ok ? report.lastHash : '', sha256Hex((await readFile(path, 'utf8')).split('\n')[7] as string));
});

/**
 * Writes a valid log of a genesis record and `reopens` "audit-log-reopened" records (each opens a segment) to
 * `path`, in batches, without keeping it whole in memory.
 */
async function manySegmentLog(path: string, reopens: number): Promise<void> {
  const logId = '0123456789abcdef0123456789abcdef';
  const time = '2026-01-01T00:00:00.000Z';
  const handle = await open(path, 'w');
  try {
    let line = sealLine(JSON.stringify({ seq: 1, time, type: 'audit-log-opened', logId, version: 1, prev: genesisPrev(logId) }));
    let batch = [line];
    for (let seq = 2; seq <= reopens + 1; seq += 1) {
      line = sealLine(JSON.stringify({ seq, time, type: 'audit-log-reopened', prev: sha256Hex(line) }));
      batch.push(line);
      if (batch.length === 10_000) {
        await handle.write(`${batch.join('\n')}\n`);
        batch = [];
      }
    }
    if (batch.length > 0) await handle.write(`${batch.join('\n')}\n`);
  } finally {
    await handle.close();
  }
}

// Each reopening record opened a segment the verifier kept to the end: a crafted log of many of them ran the
// verifier out of heap (a V8 abort, not a result). 300,000 segments took about 63 MB of segments on the old
// code, twice the heap given here; a plain log of the same size verifies in 16 MB.
test('a log of 300,000 segments verifies in a 32 MB heap, as a plain log of that size does: memory does not grow with segments', async (t) => {
  const path = join(await tempDir(t), 'segments.log');
  const reopens = 300_000;
  await manySegmentLog(path, reopens);
  const audit = new URL('../../src/audit/index.js', import.meta.url).href;
  const script = `
    const { checkAuditLog } = await import(${JSON.stringify(audit)});
    const report = await checkAuditLog(process.argv[1]);
    const { segments, ...totals } = report.ok ? report.sealing : {};
    console.log(JSON.stringify({ ok: report.ok, records: report.records, reason: report.reason, totals, reported: segments?.length }));
  `;
  const child = await new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, ['--max-old-space-size=32', '--input-type=module', '-e', script, path], { maxBuffer: 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, signal: error?.signal ?? null, stdout, stderr });
    });
  });
  t.is(child.code, 0, `the verifier exited ${child.code ?? child.signal}: ${child.stderr.slice(0, 400)}`);
  t.like(JSON.parse(child.stdout) as unknown, {
    ok: true,
    records: reopens + 1,
    totals: { segmentCount: reopens + 1, sealedSegments: 0, trustedSegments: 0, sealedThrough: 0, unsealed: reopens + 1 },
    reported: MAX_REPORTED_SEGMENTS,
  });
});

import { writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

test('audit verify prints ok and exits 0 for an intact log', async (t) => {
  const path = await logWithRecords(t);
  t.deepEqual(await run(['verify', path]), { code: 0, stdout: 'ok: 3 records\n', stderr: '' });
});

test('audit verify names the first broken line and exits 1', async (t) => {
  const path = await logWithRecords(t);
  const lines = (await readFile(path, 'utf8')).split('\n');
  lines.splice(1, 1);
  writeFileSync(path, lines.join('\n'));
  const result = await run(['verify', path]);
  t.is(result.code, 1);
  t.is(result.stdout, 'broken at line 2: seq 3 where 2 was expected (a record was deleted or reordered)\n');
});

test('audit verify of a missing file exits 1 with the reason on stderr', async (t) => {
  const result = await run(['verify', join(tmpdir(), 'gatehouse-no-such-audit.log')]);
  t.is(result.code, 1);
  t.is(result.stdout, '');
  t.regex(result.stderr, /^gatehouse audit: audit log .* cannot be opened/);
});

test('usage errors exit 2', async (t) => {
  for (const argv of [[], ['frobnicate'], ['verify'], ['verify', 'a.log', 'b.log'], ['verify', '--strict']]) {
    const result = await run(argv);
    t.is(result.code, 2, JSON.stringify(argv));
    t.regex(result.stderr, /usage: gatehouse audit verify FILE/);
  }
});

test('--help prints the usage and exits 0', async (t) => {
  const result = await run(['--help']);
  t.is(result.code, 0);
  t.regex(result.stdout, /^Usage: gatehouse audit verify FILE/);
});

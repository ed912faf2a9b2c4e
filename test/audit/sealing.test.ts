import { generateKeyPairSync, sign } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { isGatehouseError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { checkAuditLog, openAuditLog, parseSealingKeys, verifyAuditLog, type AuditLog, type SealingKey } from '../../src/audit/index.js';
import { checkpointMessage, checkpointSignatureValid, parseCheckpoint, Sealer } from '../../src/audit/sealing.js';
import { sealLine, sha256Hex } from '../../src/audit/verify-log.js';

interface Sealed {
  dir: string;
  path: string;
  keyFile: string;
  lines: string[];
  keys: SealingKey[];
}

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-audit-seal-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function exits(log: AuditLog, from: number, count: number): void {
  for (let pid = from; pid < from + count; pid += 1) log.record({ type: 'exit', plugin: 'kv', pid, code: 0, signal: null });
}

async function readKeys(keyFile: string): Promise<SealingKey[]> {
  const keys = parseSealingKeys(await readFile(keyFile, 'utf8'));
  if (typeof keys === 'string') throw new Error(keys);
  return keys;
}

async function readLines(path: string): Promise<string[]> {
  return (await readFile(path, 'utf8')).split('\n').slice(0, -1);
}

/** A closed log sealed every 3 records: genesis + 7 exits + 3 checkpoints = 11 lines, all sealed. */
async function sealedLog(t: ExecutionContext, dir?: string): Promise<Sealed> {
  const where = dir ?? (await tempDir(t));
  const path = join(where, 'audit.log');
  const keyFile = join(where, 'audit.keys');
  const log = await openAuditLog(path, { sealing: { keyFile, everyRecords: 3 } });
  exits(log, 1, 7);
  await log.close();
  return { dir: where, path, keyFile, lines: await readLines(path), keys: await readKeys(keyFile) };
}

function rewrite(path: string, lines: readonly string[]): void {
  writeFileSync(path, lines.map((line) => `${line}\n`).join(''));
}

/** Re-chains `lines` from index `from` on (fixing seq, prev and hash), editing records with `edit`: what anyone with write access can do. */
function rechain(lines: readonly string[], from: number, edit: (record: Record<string, unknown>) => void = () => undefined): string[] {
  const out = lines.slice(0, from);
  for (const line of lines.slice(from)) {
    const record = JSON.parse(line) as Record<string, unknown>;
    delete record.hash;
    edit(record);
    record.seq = out.length + 1;
    // The first line keeps its genesis prev (derived from the log id, not from a line).
    if (out.length > 0) record.prev = sha256Hex(out[out.length - 1] as string);
    out.push(sealLine(JSON.stringify(record)));
  }
  return out;
}

const isCheckpoint = (line: string): boolean => line.includes('"type":"audit-checkpoint"');

test('a sealed log checkpoints every N records and on close, and verifies from the key file', async (t) => {
  const dir = await tempDir(t);
  const seen: string[] = [];
  const path = join(dir, 'audit.log');
  const keyFile = join(dir, 'audit.keys');
  const log = await openAuditLog(path, { sealing: { keyFile, everyRecords: 3, onSealingKey: (line) => seen.push(line) } });
  exits(log, 1, 7);
  await log.close();
  const lines = await readLines(path);
  t.deepEqual(lines.map((line) => isCheckpoint(line)), [false, false, false, true, false, false, false, true, false, false, true]);
  const keyText = await readFile(keyFile, 'utf8');
  t.regex(keyText, /^gatehouse-audit-sealing-key v1 [0-9a-f]{32} 1 3 [A-Za-z0-9_-]{43}\n$/);
  t.deepEqual(seen, [keyText.trim()]);
  const report = await checkAuditLog(path, { sealingKeys: await readKeys(keyFile) });
  t.like(report, { ok: true, records: 11, sealing: { sealedThrough: 11, unsealed: 0 } });
  t.deepEqual(report.ok ? report.sealing.segments : [], [{ opened: 1, sealed: true, keyTrusted: true, checkpoints: 3, sealedThrough: 11 }]);
});

test('attack: a chain rewritten from a record before a checkpoint fails with the sealing key', async (t) => {
  const { path, lines, keys } = await sealedLog(t);
  rewrite(path, rechain(lines, 2, (record) => record.type === 'exit' && (record.pid = 999)));
  t.deepEqual(await verifyAuditLog(path), { ok: false, line: 4, code: 'AUDIT_SEAL_INVALID', reason: "checkpoint of epoch 0 is not signed by that epoch's key: records 1 to 3, which it seals, were altered after it was made (or the checkpoint was forged)" });
  t.like(await verifyAuditLog(path, { sealingKeys: keys }), { ok: false, line: 4, code: 'AUDIT_SEAL_INVALID' });
});

test('attack: checkpoints re-signed with a key taken from the host later fail', async (t) => {
  const { path, lines, keys } = await sealedLog(t);
  const logId = keys[0]?.logId as string;
  // Whoever takes the host holds at most the newest epoch key; any key but epoch 0's fails at the first checkpoint.
  const stolen = generateKeyPairSync('ed25519').privateKey;
  // Edit from line 3 on, re-chain, and sign each checkpoint properly over its new prev, as that attacker would.
  const resigned: string[] = lines.slice(0, 2);
  for (const line of lines.slice(2)) {
    const record = JSON.parse(line) as Record<string, unknown>;
    delete record.hash;
    if (record.type === 'exit') record.pid = 999;
    record.prev = sha256Hex(resigned[resigned.length - 1] as string);
    if (record.type === 'audit-checkpoint') {
      const unsigned = record as unknown as Parameters<typeof checkpointMessage>[1];
      record.signature = sign(null, checkpointMessage(logId, unsigned), stolen).toString('base64url');
    }
    resigned.push(sealLine(JSON.stringify(record)));
  }
  rewrite(path, resigned);
  t.like(await verifyAuditLog(path, { sealingKeys: keys }), { ok: false, line: 4, code: 'AUDIT_SEAL_INVALID' });
});

test('attack: removing the checkpoints and re-chaining what they sealed fails on the gap', async (t) => {
  const { path, lines, keys } = await sealedLog(t);
  rewrite(path, rechain(lines.filter((line) => !isCheckpoint(line)), 2, (record) => (record.pid = 999)));
  const gap = {
    ok: false,
    line: 5,
    code: 'AUDIT_SEAL_INVALID',
    reason: 'more than 4 records without a checkpoint in a segment sealed every 3 (checkpoints were removed)',
  };
  t.like(await verifyAuditLog(path), gap);
  t.like(await verifyAuditLog(path, { sealingKeys: keys }), gap);
  // Stripping the sealing key from the opening record as well passes the chain, not the key file.
  rewrite(path, rechain(lines.filter((line) => !isCheckpoint(line)), 0, (record) => {
    delete record.sealingKey;
    delete record.sealEvery;
  }));
  t.deepEqual(await verifyAuditLog(path), { ok: true, records: 8 }, 'the chain alone accepts it');
  t.like(await verifyAuditLog(path, { sealingKeys: keys }), { ok: false, line: 1, code: 'AUDIT_SEAL_INVALID', reason: 'the segment opened at seq 1 is not sealed' });
});

test('attack: a file replaced by a fresh sealed or unsealed log fails with the sealing key', async (t) => {
  const original = await sealedLog(t);
  const other = await sealedLog(t);
  writeFileSync(original.path, await readFile(other.path));
  t.deepEqual(await verifyAuditLog(original.path), { ok: true, records: 11 });
  t.like(await verifyAuditLog(original.path, { sealingKeys: original.keys }), { ok: false, line: 1, code: 'AUDIT_SEAL_INVALID' });
  const plain = join(other.dir, 'plain.log');
  await (await openAuditLog(plain)).close();
  writeFileSync(original.path, await readFile(plain));
  t.like(await verifyAuditLog(original.path, { sealingKeys: original.keys }), { ok: false, line: 1, code: 'AUDIT_SEAL_INVALID' });
});

test('attack: a tail cut that removes a restart fails with the sealing key; a cut inside the last segment shows as less sealed', async (t) => {
  const sealed = await sealedLog(t);
  const log = await openAuditLog(sealed.path, { sealing: { keyFile: sealed.keyFile, everyRecords: 3 } });
  exits(log, 100, 2);
  await log.close();
  const keys = await readKeys(sealed.keyFile);
  t.is(keys.length, 2);
  t.like(await checkAuditLog(sealed.path, { sealingKeys: keys }), {
    ok: true,
    records: 15,
    sealing: { segmentCount: 2, sealedSegments: 2, trustedSegments: 2, sealedThrough: 15, unsealed: 0 },
  });
  t.like(await checkAuditLog(sealed.path), { ok: true, sealing: { segmentCount: 2, sealedSegments: 2, trustedSegments: 0 } });
  // A key between two segments the log holds, for one it does not, is named as missing too.
  const between = { ...(keys[1] as SealingKey), segment: 5 };
  t.like(await verifyAuditLog(sealed.path, { sealingKeys: [keys[0] as SealingKey, between, keys[1] as SealingKey] }), {
    ok: false,
    line: 16,
    code: 'AUDIT_SEAL_INVALID',
    reason: 'the sealing-key file has a key for a segment opened at seq 5, which the log no longer holds (records were cut off the end)',
  });
  rewrite(sealed.path, sealed.lines);
  t.deepEqual(await verifyAuditLog(sealed.path), { ok: true, records: 11 }, 'the chain alone accepts it');
  t.like(await verifyAuditLog(sealed.path, { sealingKeys: keys }), {
    ok: false,
    line: 12,
    code: 'AUDIT_SEAL_INVALID',
    reason: 'the sealing-key file has a key for a segment opened at seq 12, which the log no longer holds (records were cut off the end)',
  });
  // Within the last segment the key chain cannot tell a cut from a host that wrote less: the report shows
  // how far it is sealed; an anchor (or the count kept elsewhere) catches the cut.
  rewrite(sealed.path, sealed.lines.slice(0, 8));
  t.like(await checkAuditLog(sealed.path, { sealingKeys: [keys[0] as SealingKey] }), { ok: true, records: 8, sealing: { sealedThrough: 8, unsealed: 0 } });
  t.like(await verifyAuditLog(sealed.path, { sealingKeys: [keys[0] as SealingKey], anchor: { records: 11 } }), { ok: false, code: 'AUDIT_ANCHOR_MISMATCH' });
});

test('a restart starts a new segment: it needs its own key, and may not drop sealing', async (t) => {
  const sealed = await sealedLog(t);
  const log = await openAuditLog(sealed.path, { sealing: { keyFile: sealed.keyFile, everyRecords: 3 } });
  await log.close();
  t.like(await verifyAuditLog(sealed.path, { sealingKeys: sealed.keys }), {
    ok: false,
    line: 12,
    code: 'AUDIT_SEAL_INVALID',
    reason: 'the sealing-key file has no key for the segment opened at seq 12 (a restart the file does not know of: use a newer copy of it, or someone else started this segment)',
  });
  t.like(await checkAuditLog(sealed.path, { sealingKeys: await readKeys(sealed.keyFile) }), { ok: true, records: 13 });
  // An unsealed restart of a sealed log (the writer refuses to make one; someone can write it by hand).
  const lines = await readLines(sealed.path);
  const reopened = { seq: lines.length + 1, time: new Date().toISOString(), type: 'audit-log-reopened', prev: sha256Hex(lines.at(-1) as string) };
  rewrite(sealed.path, [...lines, sealLine(JSON.stringify(reopened))]);
  t.like(await verifyAuditLog(sealed.path, { sealingKeys: await readKeys(sealed.keyFile) }), {
    ok: false,
    line: 14,
    code: 'AUDIT_SEAL_INVALID',
    reason: 'the segment opened at seq 14 is not sealed',
  });
});

test('records after the last checkpoint are reported as not sealed until the next one', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'audit.log');
  const keyFile = join(dir, 'audit.keys');
  const log = await openAuditLog(path, { sealing: { keyFile, everyRecords: 3 } });
  exits(log, 1, 4);
  await log.flush();
  t.like(await checkAuditLog(path, { sealingKeys: await readKeys(keyFile) }), { ok: true, records: 6, sealing: { sealedThrough: 4, unsealed: 2 } });
  await log.close();
  t.like(await checkAuditLog(path, { sealingKeys: await readKeys(keyFile) }), { ok: true, records: 7, sealing: { sealedThrough: 7, unsealed: 0 } });
});

test('a checkpoint is written every T seconds while records wait, not while idle', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'audit.log');
  const log = await openAuditLog(path, { sealing: { keyFile: join(dir, 'audit.keys'), everyRecords: 1000, everySeconds: 0.02 } });
  exits(log, 1, 1);
  // Waits (without a time limit of its own) until a checkpoint follows the exit record.
  while (!isCheckpoint((await readLines(path)).at(-1) ?? '')) await new Promise((resolve) => setTimeout(resolve, 20));
  const sealed = (await readLines(path)).length;
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.is((await readLines(path)).length, sealed, 'no checkpoint without new records');
  await log.close();
  t.is((await readLines(path)).length, sealed, 'nothing left to seal on close');
});

test('sealing options are checked, and the key file is never followed through a link, shared for writing or another user\'s', async (t) => {
  const dir = await tempDir(t);
  for (const sealing of [{ everyRecords: 0 }, { everyRecords: 1.5 }, { everySeconds: 0 }, { everySeconds: Number.NaN }, { keyFile: '' }]) {
    const error = await t.throwsAsync(openAuditLog(join(dir, 'a.log'), { sealing: { keyFile: join(dir, 'k'), ...sealing } }));
    t.true(isGatehouseError(error, 'INVALID_OPTIONS'), JSON.stringify(sealing));
  }
  symlinkSync(join(dir, 'elsewhere'), join(dir, 'link.keys'));
  const linked = await t.throwsAsync(openAuditLog(join(dir, 'b.log'), { sealing: { keyFile: join(dir, 'link.keys') } }));
  t.true(isGatehouseError(linked, 'AUDIT_WRITE_FAILED'));
  writeFileSync(join(dir, 'shared.keys'), '');
  chmodSync(join(dir, 'shared.keys'), 0o666);
  const shared = await t.throwsAsync(openAuditLog(join(dir, 'c.log'), { sealing: { keyFile: join(dir, 'shared.keys') } }));
  t.true(isGatehouseError(shared, 'AUDIT_WRITE_FAILED'));
  if (process.getuid?.() === 0) {
    // Another local user (nobody) who owns the key file could rewrite it before it is copied away.
    writeFileSync(join(dir, 'theirs.keys'), '');
    chownSync(join(dir, 'theirs.keys'), 65534, 65534);
    const theirs = await t.throwsAsync(openAuditLog(join(dir, 'd.log'), { sealing: { keyFile: join(dir, 'theirs.keys') } }));
    t.true(isGatehouseError(theirs, 'AUDIT_WRITE_FAILED'));
    t.regex(theirs?.message ?? '', /owned by uid 65534/);
  }
});

test('the sealer signs each epoch with its own key and hands over to the next', (t) => {
  const sealer = new Sealer();
  const logId = 'a'.repeat(32);
  const head = { segment: 1, seq: 5, time: new Date().toISOString(), prev: 'b'.repeat(64) };
  const first = sealer.seal(logId, head);
  const second = sealer.seal(logId, { ...head, seq: 9 });
  t.true(checkpointSignatureValid(logId, { ...head, ...first }, sealer.firstKey));
  t.false(checkpointSignatureValid(logId, { ...head, seq: 9, ...second }, sealer.firstKey), 'epoch 0 key no longer signs');
  t.true(checkpointSignatureValid(logId, { ...head, seq: 9, ...second }, first.nextKey));
  t.false(checkpointSignatureValid('c'.repeat(32), { ...head, ...first }, sealer.firstKey), 'bound to the log id');
  sealer.destroy();
  t.throws(() => sealer.seal(logId, head));
});

// Property tests of the two parsers that take outside input.

const validCheckpoint = {
  seq: 4,
  time: '2026-12-02T04:31:36.558Z',
  type: 'audit-checkpoint',
  segment: 1,
  epoch: 0,
  nextKey: 'n4DohL1RZta3yPGzybMobBqr_YPHOjLZ7N_Pg6QL8oI',
  signature: 'Y8Bk8jUJA4GdMtegjnpcZS88Zk_-l7Ouj2r4issBJQ-7-MoDzQm5QkQ8rCQWAytoKi6koRRD24cDr_U14if2Dw',
  prev: 'cdd893b6902de8e1a5e3171e562b912c7d7327333adc028acdf37e364d89f898',
  hash: '098d8e5e9a13c81f4e2df8694d947e7fa34da8d26cbfa99ca89bc76d7d4803da',
};

test('parseCheckpoint accepts the checkpoint shape and nothing else, and never throws', (t) => {
  t.like(parseCheckpoint({ ...validCheckpoint }), { seq: 4, epoch: 0, segment: 1 });
  fc.assert(
    fc.property(fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 12 }), (record) => {
      const result = parseCheckpoint(record);
      return typeof result === 'string' || (result.seq > result.segment && result.epoch >= 0);
    }),
    { numRuns: 2000 },
  );
  // Any one field replaced by any JSON value is refused, unless the value is itself valid for that field
  // (the line parser has checked "hash" against the line's bytes before this parser sees it).
  const fields = Object.keys(validCheckpoint).filter((field) => field !== 'hash');
  fc.assert(
    fc.property(fc.constantFrom(...fields), fc.jsonValue(), (field, value) => {
      const record: Record<string, unknown> = { ...validCheckpoint, [field]: value };
      const result = parseCheckpoint(record);
      if (typeof result === 'string') return true;
      return field !== 'type' && result[field as keyof typeof result] === value;
    }),
    { numRuns: 2000 },
  );
  // An extra field, or the fields in another order, is refused: the signature would not cover it.
  t.is(typeof parseCheckpoint({ ...validCheckpoint, extra: 1 }), 'string');
  const { seq, ...rest } = validCheckpoint;
  t.is(typeof parseCheckpoint({ ...rest, seq }), 'string');
});

test('parseSealingKeys accepts only well-formed key lines and never throws', (t) => {
  const line = 'gatehouse-audit-sealing-key v1 eba3afd71e63953df55ff5985ef4c7ee 12 3 LhZlIYe_G1ujdMAgWi1RlQh0FDjWbXKumZ9KSB-saPk';
  t.deepEqual(parseSealingKeys(`# copied off the host\n${line}\n`), [
    { logId: 'eba3afd71e63953df55ff5985ef4c7ee', segment: 12, everyRecords: 3, publicKey: 'LhZlIYe_G1ujdMAgWi1RlQh0FDjWbXKumZ9KSB-saPk' },
  ]);
  t.regex(parseSealingKeys(`${line}\n${line}\n`) as string, /a second key/);
  t.regex(parseSealingKeys('') as string, /no sealing key/);
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (text) => {
      const result = parseSealingKeys(text);
      return typeof result === 'string' || result.length > 0;
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.nat({ max: line.length - 1 }), fc.string({ minLength: 1, maxLength: 1 }), (index, char) => {
      const changed = `${line.slice(0, index)}${char}${line.slice(index + 1)}`;
      const result = parseSealingKeys(changed);
      return changed === line || typeof result === 'string' || result[0]?.publicKey !== undefined;
    }),
    { numRuns: 1000 },
  );
});

test('any single-byte change anywhere in a sealed log fails verification with its key file', async (t) => {
  const { path, keys } = await sealedLog(t);
  const original = await readFile(path);
  const damaged = join(await tempDir(t), 'damaged.log');
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: original.length - 1 }), fc.integer({ min: 1, max: 255 }), async (index, delta) => {
      const bytes = Buffer.from(original);
      bytes[index] = ((bytes[index] as number) + delta) % 256;
      writeFileSync(damaged, bytes);
      return !(await verifyAuditLog(damaged, { sealingKeys: keys })).ok;
    }),
    { numRuns: 200 },
  );
  t.pass();
});

test('recordAtExit writes the record and a checkpoint at once, in chain order, and refuses once the log is closed', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'audit.log');
  const keyFile = join(dir, 'audit.keys');
  const log = await openAuditLog(path, { sealing: { keyFile, everyRecords: 100 } });
  exits(log, 1, 2);
  await log.flush();
  t.true(log.recordAtExit?.({ type: 'kill', plugin: 'p', pid: 9, method: 'SIGKILL', reason: 'host exiting' }) ?? false);
  // Read before close: what an exiting host leaves is already on disk, sealed.
  const lines = await readLines(path);
  t.like(JSON.parse(lines.at(-2) ?? '{}'), { type: 'kill', reason: 'host exiting' });
  t.like(await checkAuditLog(path, { sealingKeys: await readKeys(keyFile) }), { ok: true, sealing: { unsealed: 0 } });
  await log.close();
  t.false(log.recordAtExit?.({ type: 'kill', plugin: 'p', pid: 9, method: 'SIGKILL', reason: 'host exiting' }) ?? true);
});

test('a start that crashed between writing its segment key and its first record does not make the key file unusable', async (t) => {
  const sealed = await sealedLog(t);
  // What that start left: a key line for the next segment (seq 12), and no record in the log.
  const orphan = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x as string;
  const logId = (JSON.parse(sealed.lines[0] ?? '{}') as { logId: string }).logId;
  appendFileSync(sealed.keyFile, `gatehouse-audit-sealing-key v1 ${logId} ${sealed.lines.length + 1} 3 ${orphan}\n`);
  const log = await openAuditLog(sealed.path, { sealing: { keyFile: sealed.keyFile, everyRecords: 3 } });
  exits(log, 1, 2);
  await log.close();
  const keys = await readKeys(sealed.keyFile);
  // The next start records the orphaned key at its seq and opens its own segment after it: no segment number is keyed twice.
  t.deepEqual(keys.map((key) => key.segment), [1, 12, 13]);
  t.like(JSON.parse((await readLines(sealed.path))[11] ?? '{}'), { seq: 12, type: 'audit-log-reopened', sealingKey: orphan, unusedKey: true });
  t.like(await checkAuditLog(sealed.path, { sealingKeys: keys }), { ok: true, sealing: { unsealed: 0 } });
});

test('attack: a log cut back and reopened over its past segments (a new key for an old segment number) fails with the sealing key', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'audit.log');
  const keyFile = join(dir, 'audit.keys');
  const offHost: string[] = [];
  const sealing = { keyFile, everyRecords: 3, onSealingKey: (line: string) => offHost.push(line) };
  for (const from of [1, 100, 200]) {
    const log = await openAuditLog(path, { sealing });
    exits(log, from, 5);
    await log.close();
  }
  const honest = await readLines(path);
  const opened = honest.filter((line) => line.includes('"type":"audit-log-')).map((line) => (JSON.parse(line) as { seq: number }).seq);
  t.deepEqual(opened, [1, 9, 17]);
  // Whoever takes the host later holds no old key: cuts the log (and its local key file) back to segment 1 and restarts it twice.
  rewrite(path, honest.slice(0, 8));
  writeFileSync(keyFile, `${offHost[0] as string}\n`);
  for (const from of [666, 777]) {
    const log = await openAuditLog(path, { sealing });
    exits(log, from, 5);
    await log.close();
  }
  t.is((await readLines(path)).length, honest.length, 'the forged segments open at the same seqs');
  const keys = parseSealingKeys(offHost.join('\n'));
  t.like(await checkAuditLog(path, { sealingKeys: keys as SealingKey[] }), {
    ok: false,
    line: 9,
    code: 'AUDIT_SEAL_INVALID',
    reason: `the sealing-key file has a second key for the segment opened at seq 9 of log ${(keys as SealingKey[])[0]?.logId} (each segment has one key, in increasing order: the log was reopened over its past, so this segment and those after it may be rewritten)`,
  });
});

test('a key line for a segment lower than the one before it is refused, even for a segment the log no longer holds', async (t) => {
  const { path, keys } = await sealedLog(t);
  const key = keys[0] as SealingKey;
  const later = { ...key, segment: 30 };
  const lower = { ...key, segment: 20, publicKey: generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x as string };
  t.like(await checkAuditLog(path, { sealingKeys: [key, later, lower] }), {
    ok: false,
    line: 12,
    code: 'AUDIT_SEAL_INVALID',
    reason: `the sealing-key file has a key for the segment opened at seq 20 of log ${key.logId} after one for seq 30 (each segment has one key, in increasing order: the log was reopened over its past, so this segment and those after it may be rewritten)`,
  });
});

test('reopening a log the sealing-key file knows to have been longer is refused: its next key would reuse a segment number', async (t) => {
  const sealed = await sealedLog(t);
  for (const count of [2, 0]) {
    const log = await openAuditLog(sealed.path, { sealing: { keyFile: sealed.keyFile, everyRecords: 3 } });
    exits(log, 100, count);
    await log.close();
  }
  t.deepEqual((await readKeys(sealed.keyFile)).map((key) => key.segment), [1, 12, 16]);
  // Back to before both restarts: the key of segment 12 could be a start that died before its first record, not that of 16.
  rewrite(sealed.path, sealed.lines);
  const keysBefore = await readFile(sealed.keyFile, 'utf8');
  const error = await t.throwsAsync(openAuditLog(sealed.path, { sealing: { keyFile: sealed.keyFile, everyRecords: 3 } }));
  t.true(isGatehouseError(error, 'AUDIT_INVALID'), String(error));
  t.regex(error?.message ?? '', /has a key for segment 16 of this log, which ends at seq 11/);
  t.is(await readFile(sealed.keyFile, 'utf8'), keysBefore, 'no key line is added');
  t.deepEqual(await readLines(sealed.path), sealed.lines, 'nothing is appended');
});

test('a sealed log reopened after its key file was deleted says so, naming the log: the earlier keys are only off the host now', async (t) => {
  const { dir, path, keyFile, keys } = await sealedLog(t);
  const [first] = keys;
  await rm(keyFile);
  const warnings: { fields: unknown; message: string }[] = [];
  const logger = { ...silentLogger, warn: (fields: unknown, message: string) => warnings.push({ fields, message }) };
  // It started a fresh key file silently, with only the new segment's key: nothing told the operator until an audit failed.
  let log = await openAuditLog(path, { sealing: { keyFile, everyRecords: 3 }, logger });
  await log.close();
  t.like(warnings, [{ fields: { keyFile, logId: first?.logId } }]);
  t.regex(warnings[0]?.message ?? '', /holds no key of log [0-9a-f]{32}.*deleted or replaced; restore its lines from the copy kept off this host/);
  // A log opened for the first time, or one whose keys are there, is no such news.
  warnings.length = 0;
  log = await openAuditLog(path, { sealing: { keyFile, everyRecords: 3 }, logger });
  await log.close();
  await (await openAuditLog(join(dir, 'new.log'), { sealing: { keyFile, everyRecords: 3 }, logger })).close();
  t.deepEqual(warnings, []);
});

test('a key line torn by a crash is ended before the next key line is appended, and reported, never taken for a key', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'audit.log');
  const keyFile = join(dir, 'audit.keys');
  let log = await openAuditLog(path, { sealing: { keyFile, everyRecords: 3 } });
  exits(log, 1, 4);
  await log.close();
  // Another log's start appends its key line, which reaches the disk only in part (a crash, a full disk).
  const whole = (await readFile(keyFile)).length;
  log = await openAuditLog(join(dir, 'other.log'), { sealing: { keyFile, everyRecords: 3 } });
  await log.close();
  truncateSync(keyFile, whole + 40);
  const warnings: unknown[] = [];
  const logger = { ...silentLogger, warn: (fields: unknown) => warnings.push(fields) };
  log = await openAuditLog(path, { sealing: { keyFile, everyRecords: 3 }, logger });
  exits(log, 10, 4);
  await log.close();
  t.like(warnings, [{ keyFile, line: 2 }]);
  const text = await readFile(keyFile, 'utf8');
  t.is(text.split('\n').length, 4, 'the torn line is ended, not welded to the next');
  t.regex(parseSealingKeys(text) as string, /^line 2 is torn: /);
  const torn: number[] = [];
  const keys = parseSealingKeys(text, (line) => torn.push(line));
  t.deepEqual(torn, [2]);
  t.like(await checkAuditLog(path, { sealingKeys: keys as SealingKey[] }), { ok: true, sealing: { unsealed: 0 } });
});

test('parseSealingKeys names a torn last line precisely, and skips it only for a caller that takes the report', (t) => {
  const line = 'gatehouse-audit-sealing-key v1 eba3afd71e63953df55ff5985ef4c7ee 12 3 LhZlIYe_G1ujdMAgWi1RlQh0FDjWbXKumZ9KSB-saPk';
  const next = line.replace(' 12 3 ', ' 20 3 ');
  for (let cut = 1; cut < next.length; cut += 1) {
    const text = `${line}\n${next.slice(0, cut)}`;
    t.regex(parseSealingKeys(text) as string, /^line 2 is torn: a key line cut short/, `cut at ${cut}`);
    const torn: number[] = [];
    t.is((parseSealingKeys(text, (at) => torn.push(at)) as SealingKey[]).length, 1);
    t.deepEqual(torn, [2]);
  }
  // A malformed line that no cut could leave is still refused, report or not.
  for (const bad of [`${line} extra`, line.replace('v1', 'v2'), `${line.slice(0, 60)}Z`, `${line}gatehouse-audit-sealing-key v1`]) {
    t.is(typeof parseSealingKeys(`${bad}\n`, () => t.fail('reported as torn')), 'string', bad);
  }
});

test('attack: a log replaced by a fresh one fails against a key file that also holds the old log\'s keys, unless the auditor names the log', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'audit.log');
  const keyFile = join(dir, 'audit.keys');
  const offHost: string[] = [];
  const sealing = { keyFile, everyRecords: 3, onSealingKey: (line: string) => offHost.push(line) };
  for (const from of [1, 100]) {
    const log = await openAuditLog(path, { sealing });
    exits(log, from, 5);
    await log.close();
  }
  const oldId = (JSON.parse((await readLines(path))[0] ?? '{}') as { logId: string }).logId;
  // Whoever takes the host deletes the log and its local key file; the host's next start makes a fresh log and ships its key.
  await rm(path);
  await rm(keyFile);
  const log = await openAuditLog(path, { sealing });
  exits(log, 666, 3);
  await log.close();
  const newId = (JSON.parse((await readLines(path))[0] ?? '{}') as { logId: string }).logId;
  const sealingKeys = parseSealingKeys(offHost.join('\n')) as SealingKey[];
  t.like(await checkAuditLog(path, { sealingKeys }), {
    ok: false,
    line: 1,
    code: 'AUDIT_SEAL_INVALID',
    reason: `the sealing-key file also holds keys of log ${oldId}, which this file (log ${newId}) is not: it may have taken that log's place; name the log you expect (--log-id or an anchor)`,
  });
  // An auditor who keeps one key file for several logs names the one they check.
  t.like(await checkAuditLog(path, { sealingKeys, anchor: { logId: newId } }), { ok: true, logId: newId });
});

test('sealing cannot be turned on or off for an existing log: the writer refuses and leaves both files as they were', async (t) => {
  const dir = await tempDir(t);
  const plain = join(dir, 'plain.log');
  const keyFile = join(dir, 'plain.keys');
  await (await openAuditLog(plain)).close();
  const before = await readFile(plain);
  const on = await t.throwsAsync(openAuditLog(plain, { sealing: { keyFile, everyRecords: 3 } }));
  t.true(isGatehouseError(on, 'AUDIT_INVALID'), String(on));
  t.regex(on?.message ?? '', /was started without sealing.*start a new log/);
  t.deepEqual(await readFile(plain), before);
  await t.throwsAsync(readFile(keyFile), { code: 'ENOENT' }, 'no key line is written');
  const sealed = await sealedLog(t, dir);
  const off = await t.throwsAsync(openAuditLog(sealed.path));
  t.true(isGatehouseError(off, 'AUDIT_INVALID'), String(off));
  t.regex(off?.message ?? '', /was started with sealing.*open it with sealing, or move it aside and start a new log/);
  t.deepEqual(await readLines(sealed.path), sealed.lines);
});

test('a checkpoint whose signature fails names the records it seals since the last good one: where the change must be', async (t) => {
  const { path, lines, keys } = await sealedLog(t);
  // Lines 4 and 8 are checkpoints; record 7 is edited and everything after it re-chained.
  t.true(isCheckpoint(lines[3] as string) && isCheckpoint(lines[7] as string));
  rewrite(path, rechain(lines, 6, (record) => record.seq === 7 && (record.signal = 'SIGKILL')));
  const result = await verifyAuditLog(path, { sealingKeys: keys });
  t.like(result, { ok: false, line: 8, code: 'AUDIT_SEAL_INVALID' });
  t.is(
    result.ok ? '' : result.reason,
    "checkpoint of epoch 1 is not signed by that epoch's key: records 5 to 7, which it seals, were altered after it was made (or the checkpoint was forged); records 1 to 4 are sealed by the checkpoints before it",
  );
});

test('recordAtExit while a write is in flight waits for it to land, then writes every record still queued and its own after it, in chain order', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'audit.log');
  const keyFile = join(dir, 'audit.keys');
  const log = await openAuditLog(path, { sealing: { keyFile, everyRecords: 100 } });
  // The first is handed to the disk at once; the second waits behind it: a host that exits now lost both its kill record and these.
  exits(log, 1, 2);
  t.true(log.recordAtExit?.({ type: 'kill', plugin: 'p', pid: 9, method: 'SIGKILL', reason: 'host exiting' }) ?? false);
  // Read before anything else runs: what an exiting host leaves is already on disk, in order, sealed.
  const lines = await readLines(path);
  t.deepEqual(lines.map((line) => (JSON.parse(line) as { type: string }).type), ['audit-log-opened', 'exit', 'exit', 'kill', 'audit-checkpoint']);
  t.like(await checkAuditLog(path, { sealingKeys: await readKeys(keyFile) }), { ok: true, records: 5, sealing: { unsealed: 0 } });
  await log.close();
  t.like(await checkAuditLog(path, { sealingKeys: await readKeys(keyFile) }), { ok: true, records: 5 });
});

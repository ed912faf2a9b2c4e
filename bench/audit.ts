// The audit log: what a record costs the host, unsealed and sealed, in a burst (group commit) and one at a
// time when each must be on disk before the host goes on; what one checkpoint costs; how fast a sealed log
// verifies. Runs in this process, on a temporary directory. Costs are CPU time (user + system) of this
// process, which a busy shared machine does not inflate; only the awaited figure is wall time, as it is the
// disk's fsync latency the host waits for.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkAuditLog, openAuditLog, parseSealingKeys, type AuditLogOptions, type SealingKey } from '../src/audit/index.js';
import { Sealer } from '../src/audit/sealing.js';

export interface AuditBenchOptions {
  /** Records per burst (recorded back to back, then one flush). */
  burstRecords: number;
  /** Records each followed by its own flush (fsync). */
  durableRecords: number;
  /** Checkpoints signed for the per-checkpoint figure. */
  checkpoints: number;
}

export interface AuditBenchResult {
  /** Checkpoint interval of the sealed runs. */
  sealEveryRecords: number;
  burstRecords: number;
  burstUsPerRecord: number;
  burstSealedUsPerRecord: number;
  durableRecords: number;
  durableMsPerRecord: number;
  durableSealedMsPerRecord: number;
  /** CPU time to sign one checkpoint (a new Ed25519 key pair and one signature), mean. */
  checkpointUs: number;
  /** Sealed log verified with its sealing-key file, records per CPU second. */
  verifyRecordsPerSec: number;
  recordBytes: number;
}

const SEAL_EVERY = 100;

const event = (pid: number) => ({ type: 'launch', plugin: 'kv', pid, argv: ['/usr/lib/gatehouse/plugins/kv', '--serve'] }) as const;

/** CPU time of this process since `from`, in microseconds. */
function cpuUs(from: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(from);
  return used.user + used.system;
}

async function burst(path: string, records: number, options: AuditLogOptions): Promise<number> {
  const log = await openAuditLog(path, options);
  const started = process.cpuUsage();
  for (let i = 0; i < records; i++) log.record(event(i));
  await log.close();
  return cpuUs(started) / records;
}

async function durable(path: string, records: number, options: AuditLogOptions): Promise<number> {
  const log = await openAuditLog(path, options);
  const started = performance.now();
  for (let i = 0; i < records; i++) {
    log.record(event(i));
    await log.flush();
  }
  await log.close();
  return (performance.now() - started) / records;
}

export async function auditBench(options: AuditBenchOptions): Promise<AuditBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-audit-'));
  try {
    const sealing = (name: string): AuditLogOptions => ({ sealing: { keyFile: join(dir, `${name}.keys`), everyRecords: SEAL_EVERY } });
    // Warm-up, so that neither variant pays for the JIT compiling the record path.
    await burst(join(dir, 'warm.log'), options.burstRecords, sealing('warm'));
    const burstUsPerRecord = await burst(join(dir, 'burst.log'), options.burstRecords, {});
    const burstSealedUsPerRecord = await burst(join(dir, 'burst-sealed.log'), options.burstRecords, sealing('burst-sealed'));
    const durableMsPerRecord = await durable(join(dir, 'durable.log'), options.durableRecords, {});
    const durableSealedMsPerRecord = await durable(join(dir, 'durable-sealed.log'), options.durableRecords, sealing('durable-sealed'));

    const sealer = new Sealer();
    const head = { segment: 1, seq: 2, time: new Date().toISOString(), prev: '0'.repeat(64) };
    const signing = process.cpuUsage();
    for (let i = 0; i < options.checkpoints; i++) sealer.seal('0'.repeat(32), head);
    const checkpointUs = cpuUs(signing) / options.checkpoints;

    const keys = parseSealingKeys(readFileSync(join(dir, 'burst-sealed.keys'), 'utf8')) as SealingKey[];
    const started = process.cpuUsage();
    const report = await checkAuditLog(join(dir, 'burst-sealed.log'), { sealingKeys: keys });
    const seconds = cpuUs(started) / 1e6;
    if (!report.ok) throw new Error(`the sealed bench log does not verify: ${report.reason}`);
    const bytes = readFileSync(join(dir, 'burst.log')).length;
    return {
      sealEveryRecords: SEAL_EVERY,
      burstRecords: options.burstRecords,
      burstUsPerRecord,
      burstSealedUsPerRecord,
      durableRecords: options.durableRecords,
      durableMsPerRecord,
      durableSealedMsPerRecord,
      checkpointUs,
      verifyRecordsPerSec: report.records / seconds,
      recordBytes: bytes / (options.burstRecords + 1),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

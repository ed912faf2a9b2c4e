// Launch to a first response through gatehouse and through the launch floor (bench/launch-floor.ts) in one
// host process, one launch of each in turn: the machine's drift falls on both alike, as in
// interleaved-unary.ts, where a launch of each in its own process, one process after the other, does not.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateEphemeralIdentity } from '../src/tls/certificate.js';
import { timedLaunch } from './host-workloads.js';
import { floorLaunch, type LaunchFloorSample } from './launch-floor.js';

export interface InterleavedLaunchResult {
  /** gatehouse's launches to a first Put and Get answered, in ms, after its first in this process. */
  gatehouseMs: number[];
  /** The floor's, the same way, each part timed: spawn, start, pinned TLS, an HTTP/2 session and the same Put and Get. */
  floor: LaunchFloorSample[];
}

/** n launches of each side, in the order ABBA..., after one of each that loads what the side needs once. */
export async function interleavedLaunch(command: readonly string[], n: number): Promise<InterleavedLaunchResult> {
  // One identity for the floor, as in launchFloor: gatehouse's per-launch identity is its own cost.
  const identity = generateEphemeralIdentity();
  const socketDir = await mkdtemp(join(tmpdir(), 'gatehouse-launch-interleaved-'));
  try {
    await timedLaunch(command);
    await floorLaunch(command, identity, socketDir);
    const result: InterleavedLaunchResult = { gatehouseMs: [], floor: [] };
    const ours = async (): Promise<void> => void result.gatehouseMs.push(await timedLaunch(command));
    const floor = async (): Promise<void> => void result.floor.push(await floorLaunch(command, identity, socketDir));
    for (let i = 0; i < n; i++) for (const launchOne of i % 2 === 0 ? [ours, floor] : [floor, ours]) await launchOne();
    return result;
  } finally {
    await rm(socketDir, { recursive: true, force: true });
  }
}

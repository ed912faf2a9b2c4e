import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** True while a process with this pid exists (signal 0 checks without signalling). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls until the condition holds or the time is up; returns the condition's last value. */
export async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return condition();
}

/** The paths of the unix sockets process `pid` listens on (its fds matched against /proc/net/unix), abstract ones left out. */
export function listeningSocketPaths(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const inode = /^socket:\[([0-9]+)\]$/.exec(target)?.[1];
      if (inode !== undefined) inodes.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  const paths: string[] = [];
  for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 is a listening socket.
    const [, , , flags = '0', , , inode = '', path] = line.trim().split(/\s+/);
    if (path !== undefined && path.startsWith('/') && (parseInt(flags, 16) & 0x10000) !== 0 && inodes.has(inode)) paths.push(path);
  }
  return paths;
}

const PTRACE_HOLD = fileURLToPath(new URL('../../../test/fixtures/ptrace-hold.py', import.meta.url));

/** Whether a process may seize another of its user's with ptrace here (the fake plugin's FAKE_PTRACE_HOLD needs it). */
export async function ptraceHoldAllowed(): Promise<boolean> {
  const target = spawn('/bin/sleep', ['5'], { stdio: 'ignore' });
  const tracer = spawn('/usr/bin/python3', [PTRACE_HOLD, String(target.pid)], { stdio: 'ignore' });
  const refused = await Promise.race([
    new Promise<boolean>((resolve) => tracer.once('exit', (code) => resolve(code === 1))),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1_000)),
  ]);
  tracer.kill('SIGKILL');
  target.kill('SIGKILL');
  return !refused;
}

/** Kills the ptrace-hold tracers holding `pid` (the fake plugin's), so that its host sees it exit at last. */
export function releasePtraceHold(pid: number): void {
  for (const entry of readdirSync('/proc').filter((name) => /^[0-9]+$/.test(name))) {
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.includes(PTRACE_HOLD) && argv.includes(String(pid))) process.kill(Number(entry), 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

// Which process and OS user wrote a segment of the audit log: what an auditor asks of every launch in it.
import { hostname, userInfo } from 'node:os';

/** The host process that opened the log (one per segment), as the `host` field of its opening record. */
export interface AuditHostIdentity {
  pid: number;
  /** Effective ids: what the host's (and so its plugins') file access was checked against. */
  uid?: number;
  gid?: number;
  /** The user name of `uid`, when the system has one (a container's uid may have no passwd entry). */
  user?: string;
  hostname: string;
}

export function auditHostIdentity(): AuditHostIdentity {
  const uid = process.geteuid?.();
  const gid = process.getegid?.();
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry for the uid: the number alone still says who it was.
  }
  return {
    pid: process.pid,
    ...(uid === undefined ? {} : { uid }),
    ...(gid === undefined ? {} : { gid }),
    ...(user === undefined ? {} : { user }),
    hostname: hostname(),
  };
}

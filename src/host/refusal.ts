import type { AuditLog } from '../audit/index.js';
import { isGatehouseError } from '../errors.js';

/** What a refusal was about: the plugin asked for (none for a whole manifest's check), and the manifest. */
export interface RefusalSubject {
  plugin?: string;
  version?: string;
  manifestPath?: string;
}

/**
 * Records why something was not run. Every path that refuses calls this before it throws: a refusal that
 * leaves no record is one an auditor never learns of.
 */
export function recordRefusal(audit: AuditLog | undefined, subject: RefusalSubject, error: unknown): void {
  audit?.record({
    type: 'refusal',
    ...(subject.plugin === undefined ? {} : { plugin: subject.plugin }),
    ...(subject.version === undefined ? {} : { version: subject.version }),
    code: isGatehouseError(error) ? error.code : 'UNEXPECTED',
    message: error instanceof Error ? error.message : String(error),
    ...(subject.manifestPath === undefined ? {} : { manifestPath: subject.manifestPath }),
  });
}

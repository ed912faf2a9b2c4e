import type { AuditLog } from '../audit/index.js';
import { isGatehouseError, type GatehouseErrorDetails } from '../errors.js';

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
    ...(isGatehouseError(error) ? evidence(error.details) : {}),
  });
}

/** The fields of a file that is not as signed (notAsSigned), kept apart in the record: which file, what it is, what was signed. */
function evidence(details: Readonly<GatehouseErrorDetails>): Pick<GatehouseErrorDetails, 'file' | 'found' | 'signed'> {
  const { file, found, signed } = details;
  return { ...(file === undefined ? {} : { file }), ...(found === undefined ? {} : { found }), ...(signed === undefined ? {} : { signed }) };
}

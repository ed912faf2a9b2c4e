import { GatehouseError } from '../errors.js';

/**
 * A file, checked against the signed manifest before anything is sealed or run (verify, discovery, the
 * checks of a verified launch), that is not the one the manifest signed: said so that the reader knows it
 * will not run and what to do.
 */
export function notAsSigned(code: 'SIZE_MISMATCH' | 'DIGEST_MISMATCH', file: string, found: string, signed: string): GatehouseError {
  return new GatehouseError(
    code,
    `${file}: ${found}, the signed manifest says ${signed}: the file changed after signing (or is from another release), so it does not run; reinstall the signed release, or if the change is yours, sign a manifest with a higher version that lists it`,
    // As fields too: what an auditor's tooling compares, from the error or its refusal record.
    { details: { file, found, signed } },
  );
}

// The audit trail's public surface: writing a hash-chained, optionally sealed log of security events, and verifying one.
export { openAuditLog, type AuditEvent, type AuditLog, type AuditLogOptions, type AuditSealingOptions } from './audit-log.js';
export { formatAnchor, parseAnchor, type AuditAnchor } from './anchor.js';
export { parseSealingKeys, type SealingKey } from './sealing.js';
export { MAX_REPORTED_SEGMENTS, type SealingReport, type SegmentReport } from './seal-check.js';
export {
  checkAuditLog,
  MAX_LINE_BYTES,
  verifyAuditLog,
  type AuditCheckOptions,
  type AuditFailure,
  type AuditFailureCode,
  type AuditReport,
  type AuditVerification,
} from './verify-log.js';

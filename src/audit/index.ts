// The audit trail's public surface: writing a hash-chained log of security events, and verifying one.
export { openAuditLog, type AuditEvent, type AuditLog, type AuditLogOptions } from './audit-log.js';
export { MAX_LINE_BYTES, verifyAuditLog, type AuditVerification } from './verify-log.js';

/**
 * The one error class gatehouse throws. `code` is stable and meant for programs; `message` is for people.
 * Modelled on sigstore-js: a union of string codes plus the underlying `cause`.
 */
export type GatehouseErrorCode =
  // configuration given by the caller
  | 'INVALID_OPTIONS'
  // launching and the handshake line
  | 'SPAWN_FAILED'
  | 'START_TIMEOUT'
  | 'START_ABORTED'
  | 'PLUGIN_EXITED'
  | 'HANDSHAKE_INVALID'
  | 'HANDSHAKE_TOO_LONG'
  | 'CORE_VERSION_MISMATCH'
  | 'PROTOCOL_VERSION_MISMATCH'
  | 'NETWORK_UNSUPPORTED'
  | 'ADDRESS_NOT_LOOPBACK'
  | 'PORT_OUT_OF_RANGE'
  | 'NETRPC_UNSUPPORTED'
  | 'PLAINTEXT_REFUSED'
  // isolation asked for but not possible here
  | 'RUN_AS_UNAVAILABLE'
  | 'LIMITS_UNAVAILABLE'
  | 'SANDBOX_UNAVAILABLE'
  // plugin-side environment contract
  | 'COOKIE_MISMATCH'
  | 'ENV_INVALID'
  // TLS
  | 'CERTIFICATE_INVALID'
  | 'CERTIFICATE_MISMATCH'
  | 'TLS_FAILED'
  // talking to the plugin
  | 'CONNECT_FAILED'
  | 'HEALTH_CHECK_FAILED'
  | 'CALL_FAILED'
  | 'CALL_ABORTED'
  | 'REFLECTION_UNAVAILABLE'
  | 'REFLECTION_FAILED'
  | 'KILL_FAILED'
  // the broker, multiplexing, versioned services and reattach
  | 'BROKER_FAILED'
  | 'MULTIPLEX_UNSUPPORTED'
  | 'MULTIPLEX_PROTOCOL_ERROR'
  | 'SERVICE_NOT_OFFERED'
  | 'REATTACH_FAILED'
  // supervisor
  | 'PLUGIN_CRASHED'
  | 'PLUGIN_DOWN'
  | 'PLUGIN_BUSY'
  | 'SUPERVISOR_STOPPED'
  // discovery and file safety
  | 'FILE_NOT_REGULAR'
  | 'FILE_NOT_EXECUTABLE'
  | 'FILE_SYMLINK_ESCAPES'
  | 'FILE_BAD_OWNER'
  | 'FILE_WRITABLE_BY_OTHERS'
  | 'DIRECTORY_WRITABLE_BY_OTHERS'
  | 'FILE_NOT_FOUND'
  | 'FILE_UNREADABLE'
  | 'FILE_UNWRITABLE'
  | 'SHEBANG_INVALID'
  // .proto files for gatehouse call
  | 'PROTO_TOO_LARGE'
  // manifests, digests and signatures
  | 'MANIFEST_INVALID'
  | 'MANIFEST_TOO_LARGE'
  | 'MANIFEST_EXPIRED'
  | 'MANIFEST_ROLLBACK'
  | 'DIGEST_MISMATCH'
  | 'SIZE_MISMATCH'
  | 'PLUGIN_NOT_IN_MANIFEST'
  | 'PLUGIN_VERSION_NOT_FOUND'
  | 'PACKAGE_FILE_UNLISTED'
  | 'PACKAGE_SYMLINK'
  | 'KEY_INVALID'
  | 'SIGNATURE_INVALID'
  | 'SIGNATURE_UNTRUSTED'
  | 'THRESHOLD_NOT_MET'
  | 'SEAL_FAILED'
  | 'SEAL_ROOT_UNSAFE'
  | 'UNVERIFIED_CODE_ENV'
  | 'BUNDLE_FAILED'
  | 'BUNDLE_OMITTED'
  | 'ARCHIVE_INVALID'
  | 'ARCHIVE_TOO_LARGE'
  | 'LOCK_MISMATCH'
  | 'INSTALL_LOCKED'
  | 'STATE_INVALID'
  // audit trail
  | 'AUDIT_WRITE_FAILED'
  | 'AUDIT_RECORDS_DROPPED'
  | 'AUDIT_INVALID'
  | 'AUDIT_ANCHOR_MISMATCH'
  | 'AUDIT_SEAL_INVALID'
  | 'AUDIT_IN_USE'
  // command line
  | 'USAGE';

/** Facts a program may branch on, so that it never has to parse `message`. */
export interface GatehouseErrorDetails {
  /** How the plugin process ended (PLUGIN_EXITED). */
  exitStatus?: { code: number | null; signal: NodeJS.Signals | null };
  /** The plugin's last stderr lines, oldest first (PLUGIN_EXITED, START_TIMEOUT). */
  stderrTail?: readonly string[];
  /** The gRPC status code of a failed call (CALL_FAILED). */
  grpcCode?: number;
  /** The versions a manifest lists for the plugin asked for (PLUGIN_VERSION_NOT_FOUND). */
  availableVersions?: readonly string[];
  /**
   * The file, relative to the plugin directory, that a package does not list or that is a link (PACKAGE_*); the
   * file that is not as signed (SIZE_MISMATCH, DIGEST_MISMATCH from verification).
   */
  file?: string;
  /** What that file is (`SHA-256 …` or `N bytes`), and what the signed manifest says (SIZE_MISMATCH, DIGEST_MISMATCH). */
  found?: string;
  signed?: string;
  /** How many audit records were dropped for the backlog cap (AUDIT_RECORDS_DROPPED). */
  droppedRecords?: number;
}

export class GatehouseError extends Error {
  override readonly name = 'GatehouseError';
  readonly code: GatehouseErrorCode;
  readonly details: Readonly<GatehouseErrorDetails>;

  constructor(
    code: GatehouseErrorCode,
    message: string,
    options?: { cause?: unknown; details?: GatehouseErrorDetails },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details ?? {};
  }
}

export function isGatehouseError(value: unknown, code?: GatehouseErrorCode): value is GatehouseError {
  return value instanceof GatehouseError && (code === undefined || value.code === code);
}

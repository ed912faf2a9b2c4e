import { dirname } from 'node:path';
import { checkFileSafety } from '../discover/file-safety.js';
import { GatehouseError } from '../errors.js';
import { writeFileAtomic } from './atomic-file.js';
import { parseStrictJson } from './strict-json.js';
import { readLimited } from '../discover/untrusted-file.js';

/** Where a host remembers the highest manifest version it has accepted, so that it never goes back. */
export interface RollbackState {
  highestVersion(): Promise<number | undefined> | number | undefined;
  /** Records that `version` was accepted; never lowers what is recorded. */
  accept(version: number): Promise<void> | void;
}

const MAX_STATE_BYTES = 4096;

/** Rollback state in one process's memory: protects a long-running host, forgets on restart. */
export class MemoryRollbackState implements RollbackState {
  #highest: number | undefined;

  highestVersion(): number | undefined {
    return this.#highest;
  }

  accept(version: number): void {
    this.#highest = Math.max(version, this.#highest ?? version);
  }
}

/**
 * Rollback state in a file (`{"highestVersion": N}`), replaced atomically and kept 0600. A missing file
 * means no manifest was accepted yet; a file that cannot be read or parsed is an error, never "no state".
 * The file and every directory above it pass the checks trusted keys pass (owned by the host's user or
 * root, writable by nobody else; its own directory not even sticky-writable), present or not.
 * Two processes accepting at the same moment can each write; the file then holds one of their versions.
 */
export class FileRollbackState implements RollbackState {
  /** `options.uid`: as in the file-safety checks, the user whose files may be trusted besides root's. */
  constructor(
    readonly file: string,
    private readonly options: { uid?: number } = {},
  ) {}

  async highestVersion(): Promise<number | undefined> {
    let bytes: Buffer;
    try {
      // Another user who can write the file, or delete or pre-create it in its directory, resets or picks the version.
      // A missing file is FILE_NOT_FOUND only once every directory on its path passed.
      await checkFileSafety(this.file, dirname(this.file), { executable: false, ...this.options });
      // O_NOFOLLOW (in readLimited): a link planted at the state path cannot make us read some other number.
      bytes = await readLimited(this.file, MAX_STATE_BYTES, 'STATE_INVALID');
    } catch (error) {
      if (error instanceof GatehouseError && error.code === 'FILE_NOT_FOUND') return undefined;
      throw error;
    }
    const state = parseStrictJson(bytes.toString('utf8'), 'STATE_INVALID', this.file) as { highestVersion?: unknown } | null;
    const keys = state !== null && typeof state === 'object' ? Object.keys(state) : [];
    const version = state?.highestVersion;
    // A state file we cannot make sense of must stop verification, or deleting a byte would reopen rollback.
    if (keys.length !== 1 || typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
      throw new GatehouseError('STATE_INVALID', `${this.file}: expected {"highestVersion": <positive integer>}`);
    }
    return version;
  }

  async accept(version: number): Promise<void> {
    const highest = await this.highestVersion();
    if (highest !== undefined && highest >= version) return;
    await writeFileAtomic(this.file, `${JSON.stringify({ highestVersion: version })}\n`, 0o600);
  }
}

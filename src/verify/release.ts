import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { onFile } from '../discover/fs-error.js';
import { GatehouseError } from '../errors.js';
import { writeFileAtomic } from './atomic-file.js';
import { writeArchive, type ArchiveFile } from './archive.js';
import { RELEASE_MANIFEST } from './install.js';
import { MAX_MANIFEST_BYTES, parseManifest } from './manifest.js';
import type { MinisignSecretKey } from './minisign-key.js';
import { signManifest } from './sign-manifest.js';
import { readLimited } from '../discover/untrusted-file.js';

const MAX_FILE_BYTES = 256 * 1024 * 1024;

/**
 * Packs DIR's manifest.json, a signature by `secretKey`, and every file the manifest lists (each checked
 * against its digest first) into a reproducible `.tar.gz` for `gatehouse install`. The trusted comment has
 * no timestamp, so the same manifest, files and key give the same bytes.
 */
export async function createRelease(dir: string, secretKey: MinisignSecretKey, out: string): Promise<{ out: string; files: number; sha256: string }> {
  const manifestBytes = await readLimited(join(dir, RELEASE_MANIFEST), MAX_MANIFEST_BYTES, 'MANIFEST_TOO_LARGE');
  const manifest = parseManifest(manifestBytes);
  const signature = signManifest(manifestBytes, secretKey, { trustedComment: `gatehouse manifest version:${manifest.version}` });
  const listed = new Map<string, { sha256: string; size: number }>();
  for (const plugin of manifest.plugins) {
    for (const file of [plugin, ...(plugin.files ?? [])]) listed.set(file.path, file);
    const interpreter = plugin.interpreter;
    if (interpreter?.sha256 !== undefined && interpreter.size !== undefined && !interpreter.path.startsWith('/')) listed.set(interpreter.path, { sha256: interpreter.sha256, size: interpreter.size });
  }
  const files: ArchiveFile[] = [
    { path: RELEASE_MANIFEST, data: manifestBytes, executable: false },
    { path: `${RELEASE_MANIFEST}.minisig`, data: Buffer.from(signature), executable: false },
  ];
  for (const [path, expected] of listed) {
    const file = join(dir, path);
    const data = await readLimited(file, MAX_FILE_BYTES, 'SIZE_MISMATCH');
    const sha256 = createHash('sha256').update(data).digest('hex');
    // A release must carry the bytes that were signed, not whatever the directory holds now.
    if (data.length !== expected.size || sha256 !== expected.sha256) throw new GatehouseError('DIGEST_MISMATCH', `${file}: differs from the manifest (${data.length} bytes, SHA-256 ${sha256})`);
    const { mode } = await onFile(file, stat(file));
    files.push({ path, data, executable: (mode & 0o100) !== 0 });
  }
  const archive = writeArchive(files);
  await writeFileAtomic(out, archive, 0o644);
  return { out, files: files.length, sha256: createHash('sha256').update(archive).digest('hex') };
}

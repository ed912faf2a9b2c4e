// Manifests, minisign keys and signatures, the signature policy, and sealed execution.
export { writeFileAtomic } from './atomic-file.js';
export { sha256File, sha256Files, type FileDigest, type FileHashResult } from './hash.js';
export { verifyPlugins, type PluginVerification, type VerifyPluginsOptions } from './installed-plugins.js';
export { readPublicKeyFile, readSecretKeyFile, writeKeyPair } from './key-files.js';
export {
  formatManifest,
  MANIFEST_SCHEMA,
  MAX_MANIFEST_BYTES,
  parseManifest,
  type Manifest,
  type ManifestFile,
  type ManifestInterpreter,
  type ManifestPlugin,
} from './manifest.js';
export { createManifest, type CreateManifestOptions } from './manifest-create.js';
export { findSignatureFiles, verifyManifestFile } from './manifest-files.js';
export {
  formatPublicKey,
  formatSecretKey,
  generateKeyPair,
  parsePublicKey,
  parseSecretKey,
  type MinisignPublicKey,
  type MinisignSecretKey,
} from './minisign-key.js';
export { signBytes, verifySignature, type SignatureAlgorithm, type SignOptions, type VerifiedSignature } from './minisign-signature.js';
export { FileRollbackState, MemoryRollbackState, type RollbackState } from './rollback-state.js';
export { sealPlugin, type SealablePlugin, type SealedFile, type SealedPlugin, type SealOptions } from './seal.js';
export { defaultSealRoot, prepareSealRoot, type SealRootOptions } from './seal-root.js';
export { removeOwnSealedCopies } from './seal-owner.js';
export { manifestFromSha256Sums, parseSha256Sums, type Sha256SumsEntry, type Sha256SumsOptions } from './sha256sums.js';
export { signManifest } from './sign-manifest.js';
export { verifyManifest, type ManifestPolicy, type VerifiedManifest } from './signature-policy.js';
export { loadTrustedKeys } from './trusted-keys.js';
export { sealVerifiedPlugin, type VerifiedPlugin, type VerifiedPluginRequest } from './verified-plugin.js';

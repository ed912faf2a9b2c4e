// The transit secrets engine (Vault's transit, reduced): encryption as a service with AES-256-GCM.
//   POST encrypt/<key> {"plaintext": base64}  -> {"data": {"ciphertext": "vault:v1:..."}}
//   POST decrypt/<key> {"ciphertext": "vault:v1:..."} -> {"data": {"plaintext": base64}}
// A key is made on its first use, by this plugin (crypto.randomBytes), and used only inside it: the
// server never receives a key in any response. It is persisted through the mount's storage so that a
// restarted or reloaded engine can still decrypt; that storage is the server's own disk (Vault seals
// it with a barrier key; this reference server does not, see its README).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { EngineError, engineVersion, KeyLock, objectBody, serveEngine, type EngineCall, type EngineReply } from '../engine.js';

const PATH = /^(encrypt|decrypt)\/([A-Za-z0-9_-]{1,128})$/;
const PREFIX = 'vault:v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Kept in memory once loaded: the hot path does not go back to the host's storage. */
const keys = new Map<string, Buffer>();
/** Loading or making one key in this process, one request at a time, so that they do not make each other retry. */
const loading = new KeyLock();

async function keyFor(call: EngineCall, name: string, create: boolean): Promise<Buffer> {
  // Two first uses at once once each made and stored a key of its own: the last write won, and the
  // ciphertexts made under the other keys could never be decrypted. update() writes a key only where none
  // is stored yet, even by another process of this engine (during a reload), and hands back the stored one.
  return (
    keys.get(name) ??
    loading.run(name, async () => {
      const key =
        keys.get(name) ??
        (await call.storage.update(`keys/${name}`, (stored) => {
          if (stored) return { result: stored };
          if (!create) throw new EngineError(400, 'unknown_key', `transit: no key named ${name}`);
          const made = randomBytes(32);
          return { value: made, result: made };
        }));
      keys.set(name, key);
      return key;
    })
  );
}

function base64Field(body: Record<string, unknown>, field: string): Buffer {
  const value = body[field];
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new EngineError(400, 'invalid_request', `transit: ${field} must be base64`);
  return Buffer.from(value, 'base64');
}

async function handle(call: EngineCall): Promise<EngineReply> {
  if (call.path === 'info') return { status: 200, body: { data: { engine: 'transit', version: engineVersion } } };
  const match = PATH.exec(call.path);
  if (!match) throw new EngineError(404, 'unsupported_path', `transit: no such path ${JSON.stringify(call.path)}; use encrypt/<key> or decrypt/<key>`);
  if (call.operation !== 'write') throw new EngineError(405, 'unsupported_operation', `transit: use POST for ${match[1]}`);
  const [, action, name = ''] = match;
  const body = objectBody(call.body);
  if (action === 'encrypt') {
    const key = await keyFor(call, name, true);
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    const sealed = Buffer.concat([iv, cipher.update(base64Field(body, 'plaintext')), cipher.final(), cipher.getAuthTag()]);
    return { status: 200, body: { data: { ciphertext: PREFIX + sealed.toString('base64') } } };
  }
  const text = body.ciphertext;
  if (typeof text !== 'string' || !text.startsWith(PREFIX)) throw new EngineError(400, 'invalid_request', `transit: ciphertext must start with ${PREFIX}`);
  const sealed = Buffer.from(text.slice(PREFIX.length), 'base64');
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new EngineError(400, 'invalid_ciphertext', 'transit: ciphertext too short');
  const key = await keyFor(call, name, false);
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    const plaintext = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
    return { status: 200, body: { data: { plaintext: plaintext.toString('base64') } } };
  } catch {
    // GCM's tag check: a changed ciphertext, or one made under another key.
    throw new EngineError(400, 'invalid_ciphertext', 'transit: the ciphertext does not authenticate under this key');
  }
}

await serveEngine(handle);

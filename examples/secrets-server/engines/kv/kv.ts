// The kv secrets engine (Vault's kv version 2, reduced): versioned secrets under data/<path>.
//   PUT/POST data/<path> {"data": {...}}   writes a new version
//   GET data/<path>[?version=N]            reads the latest (or version N)
//   DELETE data/<path>                     marks the latest version deleted
// State lives only in the storage the server offers this mount; the engine keeps nothing itself.
// main.ts serves it as a plugin.
import { EngineError, engineVersion, KeyLock, objectBody, type EngineCall, type EngineReply } from '../engine.js';

/** Versions kept per secret; older ones are dropped on write, as Vault's max_versions does. */
const MAX_VERSIONS = 10;
const PATH = /^data\/([A-Za-z0-9._\-/]{1,256})$/;
/** Writes and deletes of one secret, one at a time: two at once would both build on the same old versions. */
const changes = new KeyLock();

interface Version {
  version: number;
  data: Record<string, unknown>;
  created_time: string;
  deletion_time: string;
}
interface Secret {
  current: number;
  versions: Version[];
}

async function load(call: EngineCall, key: string): Promise<Secret | undefined> {
  const bytes = await call.storage.get(key);
  return bytes === undefined ? undefined : (JSON.parse(bytes.toString('utf8')) as Secret);
}

const metadata = (version: Version) => ({ version: version.version, created_time: version.created_time, deletion_time: version.deletion_time, destroyed: false });

/** One request; exported apart from serving so the bench can run the same code in-process. */
export async function handleKV(call: EngineCall): Promise<EngineReply> {
  const [pathOnly = '', query = ''] = call.path.split('?', 2);
  if (pathOnly === 'info') return { status: 200, body: { data: { engine: 'kv', version: engineVersion } } };
  const match = PATH.exec(pathOnly);
  if (!match || match[1]?.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) {
    throw new EngineError(404, 'unsupported_path', `kv: no such path ${JSON.stringify(pathOnly)}; use data/<secret path>`);
  }
  const key = `data/${match[1]}`;
  switch (call.operation) {
    case 'read': {
      const secret = await load(call, key);
      const wanted = Number(new URLSearchParams(query).get('version') ?? secret?.current ?? 0);
      const version = secret?.versions.find((v) => v.version === wanted);
      if (!version || version.deletion_time !== '') throw new EngineError(404, 'not_found', `kv: no secret at ${match[1]}${version ? ' (deleted)' : ''}`);
      return { status: 200, body: { data: { data: version.data, metadata: metadata(version) } } };
    }
    case 'write': {
      const data = objectBody(objectBody(call.body).data);
      // Concurrent writes once all became "version 1", each acknowledged, all but one lost.
      return changes.run(key, async () => {
        const secret = await load(call, key);
        const next: Version = { version: (secret?.current ?? 0) + 1, data, created_time: new Date().toISOString(), deletion_time: '' };
        const versions = [...(secret?.versions ?? []), next].slice(-MAX_VERSIONS);
        await call.storage.put(key, Buffer.from(JSON.stringify({ current: next.version, versions } satisfies Secret)));
        return { status: 200, body: { data: metadata(next) } };
      });
    }
    case 'delete':
      // A delete racing a write once put back the versions it had read, dropping the write.
      return changes.run(key, async () => {
        const secret = await load(call, key);
        const latest = secret?.versions.find((v) => v.version === secret.current);
        if (secret && latest && latest.deletion_time === '') {
          latest.deletion_time = new Date().toISOString();
          await call.storage.put(key, Buffer.from(JSON.stringify(secret)));
        }
        return { status: 204, body: {} };
      });
    default:
      throw new EngineError(405, 'unsupported_operation', `kv: ${call.operation} is not supported on data/`);
  }
}

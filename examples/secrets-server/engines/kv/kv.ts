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
/** Writes and deletes of one secret in this process, one at a time, so that they do not make each other retry. */
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

const parse = (bytes: Buffer | undefined): Secret | undefined => (bytes === undefined ? undefined : (JSON.parse(bytes.toString('utf8')) as Secret));
const serialize = (secret: Secret): Buffer => Buffer.from(JSON.stringify(secret));

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
      const secret = parse(await call.storage.get(key));
      const wanted = Number(new URLSearchParams(query).get('version') ?? secret?.current ?? 0);
      const version = secret?.versions.find((v) => v.version === wanted);
      if (!version || version.deletion_time !== '') throw new EngineError(404, 'not_found', `kv: no secret at ${match[1]}${version ? ' (deleted)' : ''}`);
      return { status: 200, body: { data: { data: version.data, metadata: metadata(version) } } };
    }
    case 'write': {
      const data = objectBody(objectBody(call.body).data);
      // Concurrent writes once all became "version 1", each acknowledged, all but one lost.
      return changes.run(key, () =>
        call.storage.update(key, (bytes) => {
          const secret = parse(bytes);
          const next: Version = { version: (secret?.current ?? 0) + 1, data, created_time: new Date().toISOString(), deletion_time: '' };
          const versions = [...(secret?.versions ?? []), next].slice(-MAX_VERSIONS);
          return { value: serialize({ current: next.version, versions }), result: { status: 200, body: { data: metadata(next) } } };
        }),
      );
    }
    case 'delete':
      // A delete racing a write once put back the versions it had read, dropping the write.
      return changes.run(key, () =>
        call.storage.update(key, (bytes) => {
          const secret = parse(bytes);
          const latest = secret?.versions.find((v) => v.version === secret.current);
          const result = { status: 204, body: {} };
          if (!secret || !latest || latest.deletion_time !== '') return { result };
          latest.deletion_time = new Date().toISOString();
          return { value: serialize(secret), result };
        }),
      );
    default:
      throw new EngineError(405, 'unsupported_operation', `kv: ${call.operation} is not supported on data/`);
  }
}

// serve()'s reflection under both names, answering from proto-loader's descriptors.
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { launch } from '../../src/index.js';
import { fileSymbols } from '../../src/transport/file-descriptors.js';
import {
  REFLECTION_V1,
  REFLECTION_V1ALPHA,
  reflectionService,
  type ReflectionQuery,
  type ReflectionResponse,
} from '../../src/transport/reflection-protocol.js';
import { KV_COOKIE } from '../../examples/kv/kv.js';
import { kvPluginScript } from '../helpers/paths.js';

for (const name of [REFLECTION_V1ALPHA, REFLECTION_V1] as const) {
  test(`${name}: lists the services and sends the file that declares a symbol`, async (t) => {
    await using plugin = await launch({ command: process.execPath, args: [kvPluginScript], cookie: KV_COOKIE });
    const method = reflectionService(name).ServerReflectionInfo;
    const call = plugin.grpcClient({ ServerReflectionInfo: method }).makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize);
    const queries: ReflectionQuery[] = [
      { kind: 'list_services' },
      { kind: 'file_containing_symbol', value: 'kv.KV.Get' },
      { kind: 'file_by_filename', value: 'nope.proto' },
    ];
    const responses: ReflectionResponse[] = [];
    await new Promise<void>((resolve, reject) => {
      call.on('data', (response: ReflectionResponse) => responses.push(response));
      call.on('error', reject);
      call.on('end', resolve);
      for (const query of queries) call.write({ host: '', query });
      call.end();
    });
    t.deepEqual(responses[0]?.answer, { kind: 'services', names: [REFLECTION_V1, REFLECTION_V1ALPHA, 'kv.KV'].sort() });
    const files = responses[1]?.answer?.kind === 'files' ? responses[1].answer.fileDescriptorProtos : [];
    t.is(files[0] && fileSymbols(files[0]).name, 'kv.proto');
    t.like(responses[2]?.answer, { kind: 'error', code: grpc.status.NOT_FOUND });
  });
}

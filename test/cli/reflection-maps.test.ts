// `gatehouse call` without --proto builds its types from the plugin's reflected descriptors, where a map
// field is a repeated XEntry message on the wire: requests and responses must still treat it as a map.
import test from 'ava';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { messageFromProto3Json, messageToProto3Json } from '../../src/cli/proto-json.js';
import { rootFromFileDescriptors } from '../../src/cli/reflection-protos.js';

const PROTO = `syntax = "proto3";
package steps;
message Inner { string s = 1; }
message RunRequest {
  map<string, string> params = 1;
  map<int32, Inner> inners = 2;
}`;

test('reflected descriptors keep map fields as maps: a request writes one as a JSON object, and it reads back as one', (t) => {
  const declared = protobuf.parse(PROTO, { keepCase: true }).root.resolveAll();
  const set = (declared as unknown as { toDescriptor(syntax: string): { file: unknown[] } }).toDescriptor('proto3');
  const files = set.file.map((file) => descriptor.FileDescriptorProto.encode(file as never).finish());
  const type = rootFromFileDescriptors(files).lookupType('steps.RunRequest');
  const json = { params: { lines: '3', shell: 'sh' }, inners: { '7': { s: 'x' } } };
  const bytes = type.encode(messageFromProto3Json(type, json)).finish();
  // The same bytes as the declared type makes: a plugin reads the map it declared.
  const reference = declared.lookupType('steps.RunRequest');
  t.deepEqual(reference.toObject(reference.decode(bytes)), { params: { lines: '3', shell: 'sh' }, inners: { 7: { s: 'x' } } });
  t.deepEqual(messageToProto3Json(type, type.decode(bytes) as unknown as Record<string, unknown>), json);
});

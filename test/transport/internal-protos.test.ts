// The hand-written codecs must match proto/*.proto exactly: a field number or wire type off by one
// would break go-plugin compatibility silently. protobufjs parses the .proto files here (only in tests).
import test from 'ava';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { join } from 'node:path';
import { healthService, ServingStatus } from '../../src/transport/health.js';
import { controllerService } from '../../src/transport/controller.js';
import { brokerService, type ConnInfo } from '../../src/transport/broker-protocol.js';
import { StdioChannel, stdioService } from '../../src/transport/stdio.js';
import { repoRoot } from '../helpers/paths.js';

const root = protobuf.loadSync([
  join(repoRoot, 'proto/grpc_health_v1.proto'),
  join(repoRoot, 'proto/grpc_controller.proto'),
  join(repoRoot, 'proto/grpc_broker.proto'),
  join(repoRoot, 'proto/grpc_stdio.proto'),
]);
const HealthCheckRequest = root.lookupType('grpc.health.v1.HealthCheckRequest');
const HealthCheckResponse = root.lookupType('grpc.health.v1.HealthCheckResponse');
const Empty = root.lookupType('plugin.Empty');
const ConnInfoType = root.lookupType('plugin.ConnInfo');
const StdioData = root.lookupType('plugin.StdioData');

test('health: method paths are the ones go-plugin serves', (t) => {
  t.is(healthService.Check.path, '/grpc.health.v1.Health/Check');
  t.is(controllerService.Shutdown.path, '/plugin.GRPCController/Shutdown');
});

test('health: HealthCheckRequest encodes and decodes as the .proto defines', (t) => {
  fc.assert(
    fc.property(fc.string(), (service) => {
      const ours = healthService.Check.requestSerialize({ service });
      const reference = Buffer.from(HealthCheckRequest.encode({ service }).finish());
      // Each side reads the other's bytes; default values may be omitted (ours) or written (protobufjs).
      t.deepEqual(HealthCheckRequest.toObject(HealthCheckRequest.decode(ours), { defaults: true }), { service });
      t.deepEqual(healthService.Check.requestDeserialize(reference), { service });
      if (service !== '') t.deepEqual(ours, reference);
    }),
  );
});

test('health: HealthCheckResponse encodes and decodes as the .proto defines', (t) => {
  for (const status of [ServingStatus.UNKNOWN, ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVICE_UNKNOWN]) {
    const ours = healthService.Check.responseSerialize({ status });
    const reference = Buffer.from(HealthCheckResponse.encode({ status }).finish());
    t.deepEqual(HealthCheckResponse.toObject(HealthCheckResponse.decode(ours), { defaults: true }), { status });
    t.deepEqual(healthService.Check.responseDeserialize(reference), { status });
    if (status !== ServingStatus.UNKNOWN) t.deepEqual(ours, reference);
  }
});

test('codecs skip fields they do not know, as proto3 requires', (t) => {
  // A newer peer may add fields; an older decoder must ignore them, not fail.
  const withUnknown = Buffer.concat([Buffer.from([0x10, 0x05]), HealthCheckRequest.encode({ service: 'plugin' }).finish()]);
  t.deepEqual(healthService.Check.requestDeserialize(withUnknown), { service: 'plugin' });
});

test('controller: Empty is empty on the wire', (t) => {
  t.is(controllerService.Shutdown.requestSerialize({}).length, 0);
  t.is(Buffer.from(Empty.encode({}).finish()).length, 0);
});

test('broker: StartStream is the bidirectional stream go-plugin serves', (t) => {
  t.is(brokerService.StartStream.path, '/plugin.GRPCBroker/StartStream');
  t.true(brokerService.StartStream.requestStream);
  t.true(brokerService.StartStream.responseStream);
});

const connInfoArbitrary: fc.Arbitrary<ConnInfo> = fc.record(
  {
    serviceId: fc.integer({ min: 0, max: 0xffff_ffff }),
    network: fc.string(),
    address: fc.string(),
    knock: fc.record({ knock: fc.boolean(), ack: fc.boolean(), error: fc.string() }),
  },
  { requiredKeys: ['serviceId', 'network', 'address'] },
);

test('broker: ConnInfo (with and without a knock) encodes and decodes as the .proto defines', (t) => {
  fc.assert(
    fc.property(connInfoArbitrary, (info) => {
      const ours = brokerService.StartStream.requestSerialize(info);
      const decoded = ConnInfoType.toObject(ConnInfoType.decode(ours), { defaults: true });
      t.is(decoded.serviceId, info.serviceId);
      t.is(decoded.network, info.network);
      t.is(decoded.address, info.address);
      // A knock, even an all-default one, must be present on the wire: go-plugin tests for nil.
      t.is(Object.hasOwn(ConnInfoType.decode(ours), 'knock'), info.knock !== undefined);
      if (info.knock) t.deepEqual(decoded.knock, info.knock);

      const reference = Buffer.from(ConnInfoType.encode(ConnInfoType.fromObject(info)).finish());
      t.deepEqual(brokerService.StartStream.responseDeserialize(reference), info);
    }),
  );
});

test('stdio: StreamStdio is the server stream go-plugin serves, with an empty request', (t) => {
  t.is(stdioService.StreamStdio.path, '/plugin.GRPCStdio/StreamStdio');
  t.false(stdioService.StreamStdio.requestStream);
  t.true(stdioService.StreamStdio.responseStream);
  t.is(stdioService.StreamStdio.requestSerialize({}).length, 0);
});

test('stdio: StdioData encodes and decodes as the .proto defines', (t) => {
  fc.assert(
    fc.property(fc.constantFrom(StdioChannel.INVALID, StdioChannel.STDOUT, StdioChannel.STDERR), fc.uint8Array(), (channel, bytes) => {
      const data = Buffer.from(bytes);
      const ours = stdioService.StreamStdio.responseSerialize({ channel, data });
      const decoded = StdioData.toObject(StdioData.decode(ours), { defaults: true, bytes: Buffer });
      t.is(decoded.channel, channel);
      t.deepEqual(Buffer.from(decoded.data as Uint8Array), data);
      const reference = Buffer.from(StdioData.encode({ channel, data }).finish());
      t.deepEqual(stdioService.StreamStdio.responseDeserialize(reference), { channel, data });
    }),
  );
});

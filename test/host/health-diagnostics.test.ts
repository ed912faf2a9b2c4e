// What a plugin written outside Go or TypeScript most often gets wrong about go-plugin's health check:
// it serves no grpc.health.v1.Health at all, or a stock health servicer that does not know "plugin".
import test from 'ava';
import { isGatehouseError } from '../../src/index.js';
import { checkHealth } from '../../src/host/connection.js';
import type { CallPath } from '../../src/transport/call-path.js';
import { GrpcStatusError } from '../../src/transport/grpc-http2-client.js';

function failingWith(code: number, details: string): CallPath {
  const fail = () => Promise.reject(new GrpcStatusError(code, details, new Map(), true));
  return { unary: fail, serverStream: fail, bidiStream: fail } as unknown as CallPath;
}

test('health: a plugin without grpc.health.v1.Health (UNIMPLEMENTED) is told to serve it, answering SERVING for "plugin"', async (t) => {
  const error = await t.throwsAsync(checkHealth(failingWith(12, 'Method not found!'), 1000));
  t.true(isGatehouseError(error, 'HEALTH_CHECK_FAILED'), String(error));
  t.regex(error?.message ?? '', /Method not found!/, 'what the plugin said is kept');
  t.regex(error?.message ?? '', /does not serve grpc\.health\.v1\.Health\/Check/);
  t.regex(error?.message ?? '', /SERVING for the service "plugin"/);
});

test('health: a stock health servicer that does not know "plugin" (NOT_FOUND) is told to set it SERVING', async (t) => {
  const error = await t.throwsAsync(checkHealth(failingWith(5, 'unknown service'), 1000));
  t.true(isGatehouseError(error, 'HEALTH_CHECK_FAILED'), String(error));
  t.regex(error?.message ?? '', /has no status for the service "plugin"/);
  t.regex(error?.message ?? '', /SERVING/);
});

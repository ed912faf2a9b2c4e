// What grpc-js's channelz and ORCA modules get for @grpc/proto-loader in a plugin bundle (see
// withoutGrpcJsProtoLoader in bundle.ts). Reaching it means a bundled plugin asked grpc-js for one of
// those services, which read .proto files from grpc-js's package directory.
import { GatehouseError } from '../errors.js';

throw new GatehouseError(
  'BUNDLE_OMITTED',
  "grpc-js's channelz and ORCA services read .proto files from grpc-js's own directory, which a bundle does not carry, so this bundle left out @grpc/proto-loader for them: ship a plugin that serves them as a package (docs/plugins.md), not a bundle",
);

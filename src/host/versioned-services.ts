import type * as grpc from '@grpc/grpc-js';
import { GatehouseError } from '../errors.js';
import { checkVersionLists, serviceDefinition, serviceName, type ServiceSource } from '../transport/service.js';

/**
 * The services each application protocol version offers, as a host declares them (go-plugin's
 * VersionedPlugins): each a service definition or what `plugin.client()` takes (`proto.pkg.Service` from
 * grpc.loadPackageDefinition, ts-proto's `XxxService`).
 */
export type VersionedServices = Readonly<Record<number, readonly ServiceSource<grpc.ServiceDefinition>[]>>;

/** The definitions behind VersionedServices, by version, once checked. */
export type CheckedVersions = ReadonlyMap<number, readonly grpc.ServiceDefinition[]>;

/**
 * Checks every entry of `versions` and returns the definitions behind them. A host calls it before it
 * starts or reaches anything, so that a wrong entry is INVALID_OPTIONS naming it, not a TypeError once the
 * plugin runs (or a plugin left running). The versions themselves are checked with protocolVersions.
 */
export function checkVersionedServices(versions: VersionedServices, where: string): CheckedVersions {
  return checkVersionLists(versions, where, (source, label) => serviceDefinition(source as ServiceSource<grpc.ServiceDefinition>, label));
}

/** `/pkg.Service/Method` -> `pkg.Service`, for every method of a definition. */
function serviceNames(definition: grpc.ServiceDefinition): string[] {
  return [...new Set(Object.values(definition).map((method) => serviceName(method.path)))];
}

/**
 * What the negotiated version offers, so that a client for a service the plugin does not serve in
 * that version is refused with the reason instead of failing later with UNIMPLEMENTED.
 */
export class OfferedServices {
  private readonly offered: Set<string>;

  constructor(
    private readonly versions: CheckedVersions,
    private readonly negotiated: number,
  ) {
    this.offered = new Set((versions.get(negotiated) ?? []).flatMap(serviceNames));
  }

  check(definition: grpc.ServiceDefinition): void {
    const missing = serviceNames(definition).filter((name) => !this.offered.has(name));
    if (missing.length === 0) return;
    const offered = [...this.offered].join(', ') || 'no services';
    throw new GatehouseError(
      'SERVICE_NOT_OFFERED',
      `${missing.join(', ')} is not part of protocol version ${this.negotiated}, which the plugin chose from the ` +
        `host's ${[...this.versions.keys()].join(', ')}; version ${this.negotiated} offers ${offered}`,
    );
  }
}

import type * as grpc from '@grpc/grpc-js';
import { GatehouseError } from '../errors.js';
import { serviceName } from '../transport/service.js';

/** The services each application protocol version offers, as a host declares them (go-plugin's VersionedPlugins). */
export type VersionedServices = Readonly<Record<number, readonly grpc.ServiceDefinition[]>>;

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
    private readonly versions: VersionedServices,
    private readonly negotiated: number,
  ) {
    this.offered = new Set((versions[negotiated] ?? []).flatMap(serviceNames));
  }

  check(definition: grpc.ServiceDefinition): void {
    const missing = serviceNames(definition).filter((name) => !this.offered.has(name));
    if (missing.length === 0) return;
    const offered = [...this.offered].join(', ') || 'no services';
    throw new GatehouseError(
      'SERVICE_NOT_OFFERED',
      `${missing.join(', ')} is not part of protocol version ${this.negotiated}, which the plugin chose from the ` +
        `host's ${Object.keys(this.versions).join(', ')}; version ${this.negotiated} offers ${offered}`,
    );
  }
}

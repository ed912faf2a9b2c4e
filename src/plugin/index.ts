// The plugin SDK alone (`gatehouse-plugins/plugin`): a plugin process loads only what serving needs, not the
// host, verification or audit code (measured: ~10 ms less start-up than the package index).
export { GatehouseError, isGatehouseError, type GatehouseErrorCode } from '../errors.js';
export type { Logger, LogFn } from '../logger.js';
export type { MagicCookie } from '../transport/env.js';
export { serve, type ServeOptions, type ServedPlugin, type PluginService } from './serve.js';
export { pluginService, type ServiceImplementation, type MethodHandler } from '../transport/service.js';
export type { Broker, BrokerConnection, DialOptions } from '../transport/broker.js';

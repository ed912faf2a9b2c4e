import type * as grpc from '@grpc/grpc-js';
import { serviceName, type PluginService } from '../transport/service.js';

/**
 * What is wrong between a service's definition and its implementation, in words: grpc-js itself says
 * nothing at start and answers UNIMPLEMENTED for a missing handler, while an extra one (a misspelt
 * method) is never called at all.
 */
export function implementationProblems(service: PluginService): string[] {
  const definition = service.definition as grpc.ServiceDefinition;
  const implementation = service.implementation as Record<string, unknown>;
  const methods = Object.entries(definition);
  const name = methods[0] === undefined ? 'a service with no methods' : serviceName(methods[0][1].path);
  // grpc-js finds a handler under the method's key or its originalName (proto-loader's camelCase one).
  const accepted = new Set(methods.flatMap(([key, method]) => [key, ...(method.originalName ? [method.originalName] : [])]));
  const problems: string[] = [];
  for (const [key, method] of methods) {
    const handler = implementation[key] ?? (method.originalName ? implementation[method.originalName] : undefined);
    if (typeof handler !== 'function') {
      problems.push(`${name}: the implementation lacks ${key}; calls to it will answer UNIMPLEMENTED`);
    }
  }
  const declared = methods.map(([key]) => key).join(', ');
  for (const key of Object.keys(implementation)) {
    if (!accepted.has(key)) {
      problems.push(`${name}: the implementation has ${key}, which the service does not declare (it has ${declared}); misspelt?`);
    }
  }
  return problems;
}

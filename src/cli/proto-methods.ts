/**
 * The .proto side of `gatehouse call`: finds a method by its full name in the loaded files (proto-files.ts),
 * and converts its requests and responses between proto3 JSON and the wire.
 */
import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import type { Method, Namespace, Root, Service, Type } from 'protobufjs';
import { GatehouseError } from '../errors.js';
import type { Json } from './json.js';
import { JsonMappingError, messageFromProto3Json, messageToProto3Json } from './proto-json.js';

/** How many methods an unknown-method error lists. */
const MAX_LISTED_METHODS = 50;

export type Message = Record<string, unknown>;

/** Splits "pkg.Service/Method" into the service's full name and the method's name. */
export function parseMethodName(text: string, where: string): { service: string; method: string } {
  const match = /^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\/([A-Za-z_][A-Za-z0-9_]*)$/.exec(text);
  if (match === null || match[1] === undefined || match[2] === undefined) {
    throw new GatehouseError('USAGE', `${where}: ${JSON.stringify(text.slice(0, 200))} is not a method name of the form pkg.Service/Method`);
  }
  return { service: match[1], method: match[2] };
}

/** "pkg.Service/Method", as users write it and as gRPC paths spell it after the slash. */
export function fullMethodName(method: Method): string {
  return `${(method.parent as Service).fullName.slice(1)}/${method.name}`;
}

function allServices(namespace: Namespace, into: Service[] = []): Service[] {
  for (const nested of namespace.nestedArray) {
    if (nested instanceof protobuf.Service) into.push(nested);
    if (nested instanceof protobuf.Namespace) allServices(nested, into);
  }
  return into;
}

/** The unary or server-streaming method `name`; a usage error naming the methods there are otherwise. */
export function findMethod(root: Root, name: string, where: string, protoFiles: readonly string[]): Method {
  const wanted = parseMethodName(name, where);
  const services = allServices(root);
  const service = services.find((candidate) => candidate.fullName === `.${wanted.service}`);
  // hasOwn: a method called "toString" must not find Object.prototype's.
  const method = service !== undefined && Object.hasOwn(service.methods, wanted.method) ? service.methods[wanted.method] : undefined;
  if (method === undefined) {
    const known = services.flatMap((candidate) => candidate.methodsArray.map(fullMethodName));
    const listed = known.length === 0 ? 'no services' : `methods found: ${known.slice(0, MAX_LISTED_METHODS).join(', ')}`;
    const more = known.length > MAX_LISTED_METHODS ? ` and ${known.length - MAX_LISTED_METHODS} more` : '';
    throw new GatehouseError('USAGE', `${where}: method ${name} not found in ${protoFiles.join(', ')}; ${listed}${more}`);
  }
  return method;
}

/** The request for `method` from proto3 JSON; a usage error naming the place that does not fit. */
export function requestFromJson(method: Method, json: unknown, where: string): Message {
  try {
    return messageFromProto3Json(method.resolvedRequestType as Type, json);
  } catch (error) {
    if (!(error instanceof JsonMappingError)) throw error;
    throw new GatehouseError('USAGE', `${where}: request for ${fullMethodName(method)}: ${error.message}`);
  }
}

/** A response of `method` as proto3 JSON; `label` ("script line N: " or "") goes in front of a failure. */
export function responseToJson(method: Method, response: unknown, label: string): Json {
  try {
    return messageToProto3Json(method.resolvedResponseType as Type, response as Message);
  } catch (error) {
    if (!(error instanceof JsonMappingError)) throw error;
    throw new GatehouseError(
      'CALL_FAILED',
      `${label}${fullMethodName(method)}: the response cannot be written as proto3 JSON: ${error.message}`,
    );
  }
}

/** The grpc-js definition of `method`, encoding and decoding with its protobufjs types. */
export function methodDefinition(method: Method): grpc.MethodDefinition<Message, unknown> {
  const requestType = method.resolvedRequestType as Type;
  const responseType = method.resolvedResponseType as Type;
  return {
    path: `/${fullMethodName(method)}`,
    requestStream: method.requestStream === true,
    responseStream: method.responseStream === true,
    requestSerialize: (message) => Buffer.from(requestType.encode(message).finish()),
    requestDeserialize: (bytes) => requestType.decode(bytes) as unknown as Message,
    responseSerialize: (message) => Buffer.from(responseType.encode(message as Message).finish()),
    responseDeserialize: (bytes) => responseType.decode(bytes),
  };
}

/**
 * proto3 JSON (https://protobuf.dev/programming-guides/json/) over protobufjs reflection.
 * Requests are checked strictly (unknown fields, wrong types, out-of-range numbers and impossible dates
 * are errors, not silently coerced as protobufjs's fromObject would); responses print fields without
 * presence even at their default value, 64-bit integers as strings, bytes as standard base64, enums by
 * name. Hand-written rather than @bufbuild/protobuf's: its 2.17 parser accepts impossible timestamps
 * (2023-02-29 becomes 2023-03-01) and durations with trailing text ("1.5sXYZ").
 */
import protobuf from 'protobufjs';
import type { Enum, Field, MapField, Type } from 'protobufjs';
import { isPlainObject, type Json } from './json.js';

/** protobuf's own default nesting limit; deeper JSON is refused rather than overflowing the stack. */
const MAX_NESTING = 100;

/** A request or response that does not fit its type; the message starts with where, e.g. "$.key: ". */
export class JsonMappingError extends Error {}

/** The protobufjs message for a JSON request; throws JsonMappingError naming the place that does not fit. */
export function messageFromProto3Json(type: Type, json: unknown): Record<string, unknown> {
  return messageFromJson(type, json, '$', 0);
}

/** A decoded message as proto3 JSON; throws JsonMappingError for a value JSON cannot represent. */
export function messageToProto3Json(type: Type, message: Record<string, unknown>): Json {
  return messageToJson(type, message, 0);
}

function mappingError(path: string, message: string): JsonMappingError {
  return new JsonMappingError(`${path}: ${message}`);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** protoc's JSON name: underscores dropped, the letter after each one upper-cased. */
function jsonName(field: Field): string {
  const declared: unknown = field.options?.json_name;
  if (typeof declared === 'string') return declared;
  return field.name.replace(/_+([a-z0-9]?)/gi, (_match, next: string) => next.toUpperCase());
}

const fieldsByJsonKey = new WeakMap<Type, Map<string, Field>>();

/** A field by its JSON name or its proto name; proto3 JSON parsers must accept both. */
function fieldForKey(type: Type, key: string): Field | undefined {
  let byKey = fieldsByJsonKey.get(type);
  if (byKey === undefined) {
    byKey = new Map();
    for (const field of type.fieldsArray) {
      byKey.set(field.name, field);
      byKey.set(jsonName(field), field);
    }
    fieldsByJsonKey.set(type, byKey);
  }
  return byKey.get(key);
}

/** Message fields, oneof members, proto3 `optional` and proto2 fields are printed only when set. */
function hasPresence(field: Field): boolean {
  if (field.repeated || field.map) return false;
  return field.resolvedType instanceof protobuf.Type || Boolean(field.hasPresence);
}

function acceptsNull(field: Field): boolean {
  const name = field.resolvedType?.fullName;
  return name === '.google.protobuf.Value' || name === '.google.protobuf.NullValue';
}

// --- JSON to message

function messageFromJson(type: Type, json: unknown, path: string, depth: number): Record<string, unknown> {
  if (depth > MAX_NESTING) throw mappingError(path, `nested more than ${MAX_NESTING} messages deep`);
  const special = WELL_KNOWN_TYPES.get(type.fullName);
  if (special !== undefined) return special.fromJson(json, path, type, depth);
  if (!isPlainObject(json)) throw mappingError(path, `expected an object for ${type.fullName.slice(1)}, got ${describe(json)}`);
  const entries: [string, unknown][] = [];
  const oneofs = new Map<string, string>();
  for (const [key, value] of Object.entries(json)) {
    const at = `${path}.${key}`;
    const field = fieldForKey(type, key);
    if (field === undefined) throw mappingError(at, `${type.fullName.slice(1)} has no field ${JSON.stringify(key)}`);
    if (entries.some(([name]) => name === field.name)) throw mappingError(at, `field ${field.name} is given twice`);
    if (value === null && !acceptsNull(field)) continue;
    if (field.partOf !== null) {
      const other = oneofs.get(field.partOf.name);
      if (other !== undefined) throw mappingError(at, `${other} and ${key} belong to the same oneof; set only one`);
      oneofs.set(field.partOf.name, key);
    }
    entries.push([field.name, fieldFromJson(field, value, at, depth)]);
  }
  // fromEntries defines own properties, so a "__proto__" key stays data.
  return Object.fromEntries(entries);
}

function fieldFromJson(field: Field, value: unknown, path: string, depth: number): unknown {
  if (field.map) {
    if (!isPlainObject(value)) throw mappingError(path, `expected an object (map), got ${describe(value)}`);
    const keyType = (field as unknown as MapField).keyType;
    // protobufjs writes every bool map key as true, so such a request could not be sent as written.
    if (keyType === 'bool') throw mappingError(path, 'map fields with bool keys are not supported in requests');
    return Object.fromEntries(
      Object.entries(value).map(([key, element]) => [
        mapKeyFromJson(keyType, key, `${path}[${JSON.stringify(key)}]`),
        elementFromJson(field, element, `${path}[${JSON.stringify(key)}]`, depth),
      ]),
    );
  }
  if (field.repeated) {
    if (!Array.isArray(value)) throw mappingError(path, `expected an array, got ${describe(value)}`);
    return value.map((element, index) => elementFromJson(field, element, `${path}[${index}]`, depth));
  }
  return elementFromJson(field, value, path, depth);
}

function mapKeyFromJson(keyType: string, key: string, path: string): string {
  if (keyType === 'string') return key;
  return String(scalarFromJson(keyType, key, path));
}

function elementFromJson(field: Field, value: unknown, path: string, depth: number): unknown {
  if (value === null && !acceptsNull(field)) throw mappingError(path, 'null is not allowed here');
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return messageFromJson(resolved, value, path, depth + 1);
  if (resolved instanceof protobuf.Enum) return enumFromJson(resolved, value, path);
  return scalarFromJson(field.type, value, path);
}

function enumFromJson(type: Enum, value: unknown, path: string): number {
  if (value === null && type.fullName === '.google.protobuf.NullValue') return 0;
  if (typeof value === 'string' && Object.hasOwn(type.values, value)) return type.values[value] as number;
  // Open enums: a number the .proto does not name is still a valid int32 value.
  if (typeof value === 'number' && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31) return value;
  throw mappingError(path, `expected a value of enum ${type.fullName.slice(1)} (${Object.keys(type.values).join(', ')}), got ${describe(value)}`);
}

const INTEGER_RANGES: ReadonlyMap<string, readonly [bigint, bigint]> = new Map([
  ['int32', [-(2n ** 31n), 2n ** 31n - 1n]],
  ['sint32', [-(2n ** 31n), 2n ** 31n - 1n]],
  ['sfixed32', [-(2n ** 31n), 2n ** 31n - 1n]],
  ['uint32', [0n, 2n ** 32n - 1n]],
  ['fixed32', [0n, 2n ** 32n - 1n]],
  ['int64', [-(2n ** 63n), 2n ** 63n - 1n]],
  ['sint64', [-(2n ** 63n), 2n ** 63n - 1n]],
  ['sfixed64', [-(2n ** 63n), 2n ** 63n - 1n]],
  ['uint64', [0n, 2n ** 64n - 1n]],
  ['fixed64', [0n, 2n ** 64n - 1n]],
]);

const FLOAT_MAX = 3.4028234663852886e38;

function scalarFromJson(type: string, value: unknown, path: string): unknown {
  const range = INTEGER_RANGES.get(type);
  if (range !== undefined) {
    let integer: bigint | undefined;
    // A JSON number past 2^53 has already lost digits in JSON.parse; proto3 JSON writes those as strings.
    if (typeof value === 'number' && Number.isSafeInteger(value)) integer = BigInt(value);
    if (typeof value === 'string' && /^-?(0|[1-9][0-9]*)$/.test(value)) integer = BigInt(value);
    if (integer === undefined) throw mappingError(path, `expected an integer (${type}), got ${describe(value)}`);
    if (integer < range[0] || integer > range[1]) throw mappingError(path, `${integer} is out of range for ${type}`);
    // 64-bit values go to protobufjs as decimal strings, which it encodes without going through a double.
    return range[1] > 2n ** 32n ? integer.toString() : Number(integer);
  }
  switch (type) {
    case 'double':
    case 'float': {
      const number =
        typeof value === 'number'
          ? value
          : typeof value === 'string' && /^(NaN|-?Infinity|-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?)$/.test(value)
            ? Number(value)
            : undefined;
      if (number === undefined) throw mappingError(path, `expected a number (${type}), got ${describe(value)}`);
      if (type === 'float' && Number.isFinite(number) && Math.abs(number) > FLOAT_MAX) {
        throw mappingError(path, `${number} is out of range for float`);
      }
      return number;
    }
    case 'bool':
      if (typeof value !== 'boolean') throw mappingError(path, `expected true or false, got ${describe(value)}`);
      return value;
    case 'string':
      if (typeof value !== 'string') throw mappingError(path, `expected a string, got ${describe(value)}`);
      return value;
    case 'bytes':
      // Standard or URL-safe base64, padded or not, as proto3 JSON allows.
      if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(value) || value.replace(/=+$/, '').length % 4 === 1) {
        throw mappingError(path, `expected base64 bytes, got ${describe(value)}`);
      }
      return Buffer.from(value, 'base64');
    default:
      throw mappingError(path, `unsupported field type ${type}`);
  }
}

// --- message to JSON

function messageToJson(type: Type, message: Record<string, unknown>, depth: number): Json {
  if (depth > MAX_NESTING) throw mappingError(type.fullName.slice(1), `nested more than ${MAX_NESTING} messages deep`);
  const special = WELL_KNOWN_TYPES.get(type.fullName);
  if (special !== undefined) return special.toJson(message, type, depth);
  const entries: [string, Json][] = [];
  for (const field of type.fieldsArray) {
    const value = fieldToJson(field, message, depth);
    if (value !== undefined) entries.push([jsonName(field), value]);
  }
  return Object.fromEntries(entries);
}

/** The field's JSON value; its default when unset, or undefined for an unset field with presence. */
function fieldToJson(field: Field, message: Record<string, unknown>, depth: number): Json | undefined {
  const value = Object.hasOwn(message, field.name) ? message[field.name] : undefined;
  if (value === undefined || value === null) {
    if (hasPresence(field)) return undefined;
    if (field.map) return {};
    if (field.repeated) return [];
    return elementToJson(field, field.resolvedType instanceof protobuf.Enum ? 0 : defaultScalar(field.type), depth);
  }
  if (field.map) {
    const keyType = (field as unknown as MapField).keyType;
    const long = INTEGER_RANGES.get(keyType)?.[1] ?? 0n;
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([key, element]) => [
        // protobufjs keys 64-bit maps by an 8-character hash of the number's bits.
        long > 2n ** 32n ? protobuf.util.LongBits.fromHash(key).toLong(keyType.startsWith('u') || keyType === 'fixed64').toString() : key,
        elementToJson(field, element, depth),
      ]),
    );
  }
  if (field.repeated) return (value as unknown[]).map((element) => elementToJson(field, element, depth));
  return elementToJson(field, value, depth);
}

function defaultScalar(type: string): unknown {
  if (type === 'string') return '';
  if (type === 'bool') return false;
  if (type === 'bytes') return Buffer.alloc(0);
  return 0;
}

function elementToJson(field: Field, value: unknown, depth: number): Json {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return messageToJson(resolved, value as Record<string, unknown>, depth + 1);
  if (resolved instanceof protobuf.Enum) {
    if (resolved.fullName === '.google.protobuf.NullValue') return null;
    return resolved.valuesById[value as number] ?? (value as number);
  }
  return scalarToJson(field.type, value);
}

function scalarToJson(type: string, value: unknown): Json {
  if ((INTEGER_RANGES.get(type)?.[1] ?? 0n) > 2n ** 32n) return String(value); // a Long, or a number
  switch (type) {
    case 'double':
    case 'float': {
      const number = value as number;
      if (!Number.isFinite(number)) return String(number); // "NaN", "Infinity", "-Infinity"
      return type === 'float' ? shortestFloat32(number) : number;
    }
    case 'bytes':
      return Buffer.from(value as Uint8Array).toString('base64');
    default:
      return value as Json;
  }
}

/** A float field decodes to the double nearest its 32 bits; print the shortest decimal of the float. */
function shortestFloat32(value: number): number {
  for (let digits = 1; digits < 17; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}

// --- well-known types with their own JSON forms

interface WellKnownType {
  fromJson(json: unknown, path: string, type: Type, depth: number): Record<string, unknown>;
  toJson(message: Record<string, unknown>, type: Type, depth: number): Json;
}

/**
 * A well-known type's field by number: protobufjs's bundled copies name some fields in snake_case
 * (Any.type_url) and others in camelCase (Value.nullValue), so names cannot be relied on.
 */
function numbered(type: Type, id: number): Field {
  return type.fieldsById[id] as Field;
}

/** The message with field `id` set to `value`, keyed by whatever name the loaded type uses. */
function withField(type: Type, id: number, value: unknown): Record<string, unknown> {
  return Object.fromEntries([[numbered(type, id).name, value]]);
}

/** Timestamps from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z, as proto3 JSON allows. */
const TIMESTAMP_SECONDS: readonly [bigint, bigint] = [-62_135_596_800n, 253_402_300_799n];
const DURATION_MAX_SECONDS = 315_576_000_000n;
const TIMESTAMP_PATTERN = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|([+-])(\d{2}):(\d{2}))$/;
const DURATION_PATTERN = /^(-)?(\d{1,12})(?:\.(\d{1,9}))?s$/;

/** Nanoseconds as 0, 3, 6 or 9 fractional digits, as protobuf's own JSON printers write them. */
function fraction(nanos: number): string {
  if (nanos === 0) return '';
  const digits = String(nanos).padStart(9, '0');
  return `.${nanos % 1_000_000 === 0 ? digits.slice(0, 3) : nanos % 1000 === 0 ? digits.slice(0, 6) : digits}`;
}

/** Timestamp and Duration share their layout: 1 seconds (int64), 2 nanos (int32). */
function secondsAndNanos(message: Record<string, unknown>, type: Type): [bigint, number] {
  const seconds = message[numbered(type, 1).name];
  const nanos = message[numbered(type, 2).name];
  return [BigInt(String(seconds ?? 0)), Number(nanos ?? 0)];
}

function fromSecondsAndNanos(type: Type, seconds: bigint, nanos: number): Record<string, unknown> {
  return { ...withField(type, 1, seconds.toString()), ...withField(type, 2, nanos) };
}

const timestampJson: WellKnownType = {
  fromJson(json, path, type) {
    const match = typeof json === 'string' ? TIMESTAMP_PATTERN.exec(json) : null;
    if (match === null) throw mappingError(path, `expected an RFC 3339 timestamp such as "2024-01-02T03:04:05Z", got ${describe(json)}`);
    const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    const date = new Date(0);
    date.setUTCFullYear(year, month - 1, day);
    date.setUTCHours(hour, minute, second, 0);
    // Date rolls 30 February over into March; a round trip that changes a field means it was invalid.
    const exact =
      date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day &&
      date.getUTCHours() === hour && date.getUTCMinutes() === minute && date.getUTCSeconds() === second;
    const offsetHours = Number(match[9] ?? 0);
    const offsetMinutes = Number(match[10] ?? 0);
    if (!exact || offsetHours > 23 || offsetMinutes > 59) throw mappingError(path, `${JSON.stringify(json)} is not a valid date and time`);
    const offset = BigInt(offsetHours * 3600 + offsetMinutes * 60) * (match[8] === '-' ? -1n : 1n);
    const seconds = BigInt(date.getTime() / 1000) - offset;
    if (seconds < TIMESTAMP_SECONDS[0] || seconds > TIMESTAMP_SECONDS[1]) throw mappingError(path, 'timestamp out of range');
    return fromSecondsAndNanos(type, seconds, Number((match[7] ?? '').padEnd(9, '0')));
  },
  toJson(message, type) {
    const [seconds, nanos] = secondsAndNanos(message, type);
    if (seconds < TIMESTAMP_SECONDS[0] || seconds > TIMESTAMP_SECONDS[1] || nanos < 0 || nanos > 999_999_999) {
      throw mappingError('google.protobuf.Timestamp', `seconds ${seconds} and nanos ${nanos} are out of range`);
    }
    return `${new Date(Number(seconds) * 1000).toISOString().slice(0, 19)}${fraction(nanos)}Z`;
  },
};

const durationJson: WellKnownType = {
  fromJson(json, path, type) {
    const match = typeof json === 'string' ? DURATION_PATTERN.exec(json) : null;
    if (match === null) throw mappingError(path, `expected a duration such as "1.5s", got ${describe(json)}`);
    const negative = match[1] === '-';
    const seconds = BigInt(match[2] ?? '0');
    if (seconds > DURATION_MAX_SECONDS) throw mappingError(path, 'duration out of range');
    const nanos = Number((match[3] ?? '').padEnd(9, '0'));
    // Both parts carry the sign, as the Duration message requires.
    return fromSecondsAndNanos(type, negative ? -seconds : seconds, negative ? -nanos : nanos);
  },
  toJson(message, type) {
    const [seconds, nanos] = secondsAndNanos(message, type);
    const negative = seconds < 0n || nanos < 0;
    const magnitude = negative ? -seconds : seconds;
    if ((seconds < 0n && nanos > 0) || (seconds > 0n && nanos < 0) || Math.abs(nanos) > 999_999_999 || magnitude > DURATION_MAX_SECONDS) {
      throw mappingError('google.protobuf.Duration', `seconds ${seconds} and nanos ${nanos} are not a valid duration`);
    }
    return `${negative ? '-' : ''}${magnitude}${fraction(Math.abs(nanos))}s`;
  },
};

/** DoubleValue, StringValue and the rest, Struct (its map) and ListValue (its list): field 1 itself. */
const firstFieldJson: WellKnownType = {
  fromJson: (json, path, type, depth) => withField(type, 1, fieldFromJson(numbered(type, 1), json, path, depth)),
  // Never undefined: field 1 of these types has no presence, so an unset one prints its default.
  toJson: (message, type, depth) => fieldToJson(numbered(type, 1), message, depth) ?? null,
};

/** Value's kinds by field number: 1 null, 2 number, 3 string, 4 bool, 5 Struct, 6 ListValue. */
const valueJson: WellKnownType = {
  fromJson(json, path, type, depth) {
    if (json === null) return withField(type, 1, 0);
    if (typeof json === 'number') return withField(type, 2, json);
    if (typeof json === 'string') return withField(type, 3, json);
    if (typeof json === 'boolean') return withField(type, 4, json);
    const id = Array.isArray(json) ? 6 : 5;
    return withField(type, id, elementFromJson(numbered(type, id), json, path, depth));
  },
  toJson(message, type, depth) {
    const set = type.fieldsArray.find((field) => Object.hasOwn(message, field.name) && message[field.name] != null);
    if (set === undefined) throw mappingError('google.protobuf.Value', 'no kind is set');
    const kind = message[set.name];
    if (set.id === 2 && !Number.isFinite(kind)) throw mappingError('google.protobuf.Value', `${String(kind)} has no JSON form`);
    return elementToJson(set, kind, depth);
  },
};

const fieldMaskJson: WellKnownType = {
  fromJson(json, path, type) {
    if (typeof json !== 'string') throw mappingError(path, `expected a string of comma-separated paths, got ${describe(json)}`);
    const paths = json === '' ? [] : json.split(',').map((item) => item.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`));
    return withField(type, 1, paths);
  },
  toJson: (message, type) =>
    ((message[numbered(type, 1).name] as string[] | undefined) ?? [])
      .map((item) => item.replace(/_([a-z0-9])/g, (_match, next: string) => next.toUpperCase()))
      .join(','),
};

/** The message type an Any's type URL names, from the loaded protos. */
function anyTarget(anyType: Type, typeUrl: string, path: string): Type {
  const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
  const found = name === '' ? null : anyType.root.lookup(name);
  if (!(found instanceof protobuf.Type)) {
    throw mappingError(path, `google.protobuf.Any holds ${JSON.stringify(typeUrl)}, a type not in the loaded protos (add its --proto)`);
  }
  return found;
}

/** Any: 1 type_url, 2 value; in JSON the packed message's own fields beside "@type". */
const anyJson: WellKnownType = {
  fromJson(json, path, type, depth) {
    if (!isPlainObject(json)) throw mappingError(path, `expected an object with "@type", got ${describe(json)}`);
    if (Object.keys(json).length === 0) return {};
    const typeUrl = json['@type'];
    if (typeof typeUrl !== 'string') throw mappingError(path, 'google.protobuf.Any needs an "@type" string');
    const target = anyTarget(type, typeUrl, path);
    const { '@type': _typeUrl, ...fields } = json;
    // A well-known type inside an Any keeps its own JSON form under "value".
    const inner = WELL_KNOWN_TYPES.has(target.fullName) ? fields.value : fields;
    const packed = target.encode(messageFromJson(target, inner, path, depth + 1)).finish();
    return { ...withField(type, 1, typeUrl), ...withField(type, 2, packed) };
  },
  toJson(message, type, depth) {
    const typeUrl = message[numbered(type, 1).name];
    if (typeof typeUrl !== 'string' || typeUrl === '') return {};
    const target = anyTarget(type, typeUrl, 'google.protobuf.Any');
    const packed = (message[numbered(type, 2).name] as Uint8Array | undefined) ?? new Uint8Array();
    let decoded: Record<string, unknown>;
    try {
      decoded = target.decode(packed) as unknown as Record<string, unknown>;
    } catch (error) {
      throw mappingError('google.protobuf.Any', `its ${typeUrl} value does not decode: ${(error as Error).message}`);
    }
    const inner = messageToJson(target, decoded, depth + 1);
    const fields: Record<string, Json> = WELL_KNOWN_TYPES.has(target.fullName) ? { value: inner } : (inner as Record<string, Json>);
    return { '@type': typeUrl, ...fields };
  },
};

const WELL_KNOWN_TYPES: ReadonlyMap<string, WellKnownType> = new Map([
  ['.google.protobuf.Timestamp', timestampJson],
  ['.google.protobuf.Duration', durationJson],
  ['.google.protobuf.Struct', firstFieldJson],
  ['.google.protobuf.ListValue', firstFieldJson],
  ['.google.protobuf.Value', valueJson],
  ['.google.protobuf.FieldMask', fieldMaskJson],
  ['.google.protobuf.Any', anyJson],
  ...['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map(
    (name) => [`.google.protobuf.${name}Value`, firstFieldJson] as const,
  ),
]);

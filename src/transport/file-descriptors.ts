// Just enough of google.protobuf.FileDescriptorProto to answer reflection: a file's name, its imports
// and the full names of what it declares. The descriptors come from the plugin's own definitions or
// the FileDescriptorSet it passes to serve() (as `protoc --descriptor_set_out` writes it).
import { GatehouseError } from '../errors.js';
import { Reader, readBuffer } from './protobuf.js';

export interface FileSymbols {
  name: string;
  dependencies: string[];
  /** Full names without a leading dot: messages (nested too), enums, services and their methods. */
  symbols: string[];
}

/** Calls `onField` for each length-delimited field of a message, skipping the rest. */
function eachBytesField(bytes: Buffer, onField: (field: number, value: Buffer) => void): void {
  const reader = Reader.create(bytes);
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if ((tag & 7) === 2) onField(tag >>> 3, readBuffer(reader));
    else reader.skipType(tag & 7);
  }
}

function nameOf(bytes: Buffer): string {
  let name = '';
  eachBytesField(bytes, (field, value) => {
    if (field === 1) name = value.toString('utf8');
  });
  return name;
}

/** Deeper nesting than any real .proto: a bound on the recursion a crafted descriptor could ask for. */
const MAX_NESTING = 64;

/** A DescriptorProto's full name and those of its nested messages and enums. */
function messageSymbols(bytes: Buffer, scope: string, into: string[], depth = 0): void {
  if (depth > MAX_NESTING) throw new GatehouseError('REFLECTION_FAILED', `a file descriptor nests messages deeper than ${MAX_NESTING}`);
  const name = `${scope}${nameOf(bytes)}`;
  into.push(name);
  eachBytesField(bytes, (field, value) => {
    if (field === 3) messageSymbols(value, `${name}.`, into, depth + 1);
    else if (field === 4) into.push(`${name}.${nameOf(value)}`);
  });
}

export function fileSymbols(fileDescriptorProto: Buffer): FileSymbols {
  let name = '';
  let scope = '';
  const dependencies: string[] = [];
  const declarations: [number, Buffer][] = [];
  eachBytesField(fileDescriptorProto, (field, value) => {
    if (field === 1) name = value.toString('utf8');
    else if (field === 2) scope = `${value.toString('utf8')}.`;
    else if (field === 3) dependencies.push(value.toString('utf8'));
    else if (field === 4 || field === 5 || field === 6) declarations.push([field, value]);
  });
  // The package comes first in files protoc writes, but the wire allows any order.
  const symbols: string[] = [];
  for (const [field, value] of declarations) {
    if (field === 4) messageSymbols(value, scope, symbols);
    else if (field === 5) symbols.push(`${scope}${nameOf(value)}`);
    else {
      const service = `${scope}${nameOf(value)}`;
      symbols.push(service);
      eachBytesField(value, (methodField, method) => {
        if (methodField === 2) symbols.push(`${service}.${nameOf(method)}`);
      });
    }
  }
  return { name, dependencies, symbols };
}

/** More files than any plugin's .proto files and their imports: a bound on what one set may make us index. */
export const MAX_DESCRIPTOR_FILES = 1024;

/**
 * The FileDescriptorProtos of a google.protobuf.FileDescriptorSet (each a length-delimited field 1), as
 * views over its memory. Throws on bytes that are not such a set or hold over MAX_DESCRIPTOR_FILES files.
 */
export function descriptorSetFiles(set: Uint8Array): Buffer[] {
  const files: Buffer[] = [];
  eachBytesField(Buffer.from(set.buffer, set.byteOffset, set.byteLength), (field, value) => {
    if (field !== 1) return;
    // A set of a million one-byte files would make an index of a million entries.
    if (files.length === MAX_DESCRIPTOR_FILES) {
      throw new GatehouseError('REFLECTION_FAILED', `a FileDescriptorSet holds over ${MAX_DESCRIPTOR_FILES} files`);
    }
    files.push(value);
  });
  return files;
}

/** Files by name and by the symbols they declare; a file with its imports, each once. */
export class DescriptorIndex {
  private readonly files = new Map<string, { bytes: Buffer; symbols: FileSymbols }>();
  private readonly bySymbol = new Map<string, string>();

  add(fileDescriptorProto: Buffer): void {
    const symbols = fileSymbols(fileDescriptorProto);
    if (this.files.has(symbols.name)) return;
    this.files.set(symbols.name, { bytes: fileDescriptorProto, symbols });
    for (const symbol of symbols.symbols) this.bySymbol.set(symbol, symbols.name);
  }

  /** The file and everything it imports (that we have), the file first; undefined if unknown. */
  withDependencies(fileName: string): Buffer[] | undefined {
    if (!this.files.has(fileName)) return undefined;
    const seen = new Set<string>();
    const out: Buffer[] = [];
    const visit = (name: string): void => {
      const file = this.files.get(name);
      if (file === undefined || seen.has(name)) return;
      seen.add(name);
      out.push(file.bytes);
      file.symbols.dependencies.forEach(visit);
    };
    visit(fileName);
    return out;
  }

  fileOfSymbol(symbol: string): string | undefined {
    return this.bySymbol.get(symbol.replace(/^\./, ''));
  }
}

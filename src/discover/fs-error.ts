import { GatehouseError } from '../errors.js';

/** Turns a node:fs failure on `file` into a GatehouseError with a stable code; keeps the original as cause. */
export function fsError(error: unknown, file: string): GatehouseError {
  if (error instanceof GatehouseError) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new GatehouseError('FILE_NOT_FOUND', `${file}: no such file`, { cause: error });
  }
  if (code === 'ELOOP') {
    return new GatehouseError('FILE_NOT_REGULAR', `${file}: is a symbolic link`, { cause: error });
  }
  return new GatehouseError('FILE_UNREADABLE', `${file}: cannot be read (${code ?? String(error)})`, { cause: error });
}

/** `operation` on `file`, its node:fs failure turned into a GatehouseError by {@link fsError}. */
export function onFile<T>(file: string, operation: Promise<T>): Promise<T> {
  return operation.catch((error: unknown) => Promise.reject(fsError(error, file)));
}

/** Like {@link onFile}, but `file` not being there gives undefined. */
export function onFileIfAny<T>(file: string, operation: Promise<T>): Promise<T | undefined> {
  return operation.catch((error: unknown) => ((error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT' ? undefined : Promise.reject(fsError(error, file))));
}

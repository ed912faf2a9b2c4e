/** The version `gatehouse --version` prints: the package's own, read from the package.json it ships with. */
import { readFileSync } from 'node:fs';

/** dist/src/cli/version.js is three levels below the package root, in a checkout and once installed. */
const PACKAGE_JSON = new URL('../../../package.json', import.meta.url);

export function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { name?: unknown; version?: unknown };
  return `${String(manifest.name)} ${String(manifest.version)}`;
}

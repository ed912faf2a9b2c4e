import { fileURLToPath } from 'node:url';

/** Tests run compiled from dist/test/…; these point at the repository and the compiled tree. */
export const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
export const distRoot = fileURLToPath(new URL('../..', import.meta.url));
export const kvPluginScript = fileURLToPath(new URL('../../examples/kv/plugin.js', import.meta.url));
export const fakePluginScript = fileURLToPath(new URL('../fixtures/fake-plugin.js', import.meta.url));
export const workerPluginScript = fileURLToPath(new URL('../fixtures/worker-plugin.js', import.meta.url));

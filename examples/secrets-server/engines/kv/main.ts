// The kv engine as a plugin (see kv.ts).
import { serveEngine } from '../engine.js';
import { handleKV } from './kv.js';

await serveEngine(handleKV);

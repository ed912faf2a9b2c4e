export { discover, type DiscoveryResult, type PluginCandidate } from './discover.js';
export { checkFileSafety, type SafeFile, type SafetyOptions } from './file-safety.js';
